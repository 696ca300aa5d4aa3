"""The registry's state as Prometheus metrics, read at scrape time.

:class:`RegistryCollector` reads the channels (running and closing), their players, buffers,
event senders and engine stats, and the refusal and event counters the registry's parts keep,
when ``/metrics`` is scraped: nothing on the request or fetch paths updates a gauge. What is
counted as it happens lives in :mod:`trioproxy.observability.metrics`.

No label names a channel or a content id: channels are summed by state, players by kind,
engine stats by the engine's bounded label.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import TYPE_CHECKING

import trio
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ..observability.metrics import PLAYER_KINDS
from .channel import ChannelState

if TYPE_CHECKING:
    from prometheus_client import Metric

    from .channel import Channel
    from .registry import Registry

__all__ = ["ENGINE_STATUSES", "KB", "REFUSAL_REASONS", "RegistryCollector"]

KB = 1024
"""Bytes in the engine's kB: its ``speed_down``/``speed_up`` are kB/s."""

ENGINE_STATUSES = ("prebuf", "dl")
"""The statuses an engine session reports; any other counts as ``other``."""

REFUSAL_REASONS: dict[str, tuple[str, str]] = {
    "channels": ("admission", "channels"),
    "players": ("admission", "players"),
    "opening": ("admission", "opening"),
    "address_channels": ("addresses", "channels"),
    "address_players": ("addresses", "players"),
    "address_opening": ("addresses", "opening"),
    "memory": ("memory", "channels"),
    "failure_backoff": ("registry", "failure_backoff"),
    "looping": ("registry", "looping"),
    "shutdown": ("registry", "shutdown"),
}
"""Each ``reason`` of ``trioproxy_admission_refusals_total``: whose counter, which key."""


class RegistryCollector(Collector):
    """Collects ``registry``'s state on every scrape."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        registry = self.registry
        now = trio.current_time()
        running, closing = registry.channels, registry.closing
        everything = [*running, *closing]

        states = GaugeMetricFamily(
            "trioproxy_channels", "Channels by state (closing ones included)", labels=["state"]
        )
        by_state = Counter(channel.state for channel in everything)
        for state in ChannelState:
            states.add_metric([state.value], by_state[state])
        yield states

        players = GaugeMetricFamily("trioproxy_players", "Players by kind", labels=["kind"])
        by_kind: Counter[str] = Counter()
        waiting = segments = held = 0
        for channel in everything:
            by_kind.update(channel.player_counts(now))
            waiting += channel.waiting
            segments += len(channel.window)
            held += channel.window.total_bytes
        for kind in PLAYER_KINDS:
            players.add_metric([kind], by_kind[kind])
        yield players
        yield GaugeMetricFamily(
            "trioproxy_players_waiting",
            "Requests waiting for a channel's first segments",
            value=waiting,
        )
        yield GaugeMetricFamily(
            "trioproxy_buffer_segments", "Segments held in every channel's window", value=segments
        )
        yield GaugeMetricFamily(
            "trioproxy_buffer_bytes", "Bytes of segments held in every window", value=held
        )
        budget = registry.memory.budget
        yield GaugeMetricFamily(
            "trioproxy_memory_budget_bytes", "TRIOPROXY_MEMORY_BUDGET", value=budget.limit
        )
        yield GaugeMetricFamily(
            "trioproxy_memory_charged_bytes",
            "Bytes charged to the memory budget (held plus reserves)",
            value=budget.charged,
        )
        yield CounterMetricFamily(
            "trioproxy_channels_started", "Channels started", value=registry.started_total
        )
        yield from self._events(everything)
        yield self._refusals()
        yield from self._engine_stats(everything)

    def _events(self, channels: list[Channel]) -> Iterator[Metric]:
        orchestrator = self.registry.orchestrator
        delivered = dropped = 0
        if orchestrator is not None:
            delivered, dropped = orchestrator.delivered, orchestrator.dropped
        pending = sum(channel.events_pending for channel in channels)
        yield CounterMetricFamily(
            "trioproxy_events_delivered", "Events the orchestrator accepted", value=delivered
        )
        yield CounterMetricFamily(
            "trioproxy_events_dropped",
            "Events given up (refused, or not delivered by their deadline)",
            value=dropped,
        )
        yield GaugeMetricFamily(
            "trioproxy_events_pending", "Events queued, not delivered yet", value=pending
        )

    def _refusals(self) -> Metric:
        registry = self.registry
        counters: dict[str, Counter[str]] = {
            "admission": registry.admission.refused,
            "addresses": registry.addresses.refused,
            "memory": registry.memory.refused,
            "registry": registry.refused,
        }
        family = CounterMetricFamily(
            "trioproxy_admission_refusals",
            "New channels and players refused, by reason",
            labels=["reason"],
        )
        for reason, (whose, key) in REFUSAL_REASONS.items():
            family.add_metric([reason], counters[whose][key])
        return family

    def _engine_stats(self, channels: list[Channel]) -> Iterator[Metric]:
        sessions: Counter[tuple[str, str]] = Counter()
        sums: defaultdict[str, list[float]] = defaultdict(lambda: [0.0] * 5)
        for channel in channels:
            stat = channel.feed.engine_stat
            if stat is None:
                continue
            engine = channel.client.metrics.engine
            status = stat.status if stat.status in ENGINE_STATUSES else "other"
            sessions[engine, status or "other"] += 1
            totals = sums[engine]
            for index, value in enumerate(
                (
                    stat.peers,
                    stat.speed_down and stat.speed_down * KB,
                    stat.speed_up and stat.speed_up * KB,
                    stat.downloaded,
                    stat.uploaded,
                )
            ):
                totals[index] += value or 0
        family = GaugeMetricFamily(
            "trioproxy_engine_sessions",
            "Engine sessions with a stat answer, by engine and the status it reports",
            labels=["engine", "status"],
        )
        for (engine, status), count in sorted(sessions.items()):
            family.add_metric([engine, status], count)
        yield family
        names = (
            ("trioproxy_engine_peers", "Peers of the engine's sessions (stat_url), summed"),
            (
                "trioproxy_engine_download_speed_bytes_per_second",
                "Download speed of the engine's sessions (stat_url), summed",
            ),
            (
                "trioproxy_engine_upload_speed_bytes_per_second",
                "Upload speed of the engine's sessions (stat_url), summed",
            ),
            (
                "trioproxy_engine_downloaded_bytes",
                "Bytes the engine's current sessions downloaded (stat_url), summed",
            ),
            (
                "trioproxy_engine_uploaded_bytes",
                "Bytes the engine's current sessions uploaded (stat_url), summed",
            ),
        )
        for index, (name, help) in enumerate(names):
            family = GaugeMetricFamily(name, help, labels=["engine"])
            for engine, totals in sorted(sums.items()):
                family.add_metric([engine], totals[index])
            yield family
