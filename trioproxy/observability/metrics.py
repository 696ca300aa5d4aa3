"""The process-wide counters and histograms, counted where things happen.

They live in their own :data:`METRICS` registry (not prometheus-client's global one), which
``/metrics`` serves together with what the channel registry holds at scrape time.

Labels are bounded: no content ids, no channel names. ``engine`` is an engine's ``host:port``
for the first :data:`MAX_ENGINE_LABELS` engines seen (in the order first seen), ``other``
beyond them, and ``source`` for a configured source or rendition (an HLS origin, not an engine).
Hot paths resolve their labelled children once (``.labels(...)`` costs a dict lookup under a
lock) and keep them.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Literal

import trio
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.process_collector import ProcessCollector

__all__ = [
    "BYTES_RECEIVED",
    "BYTES_SENT",
    "CHANNEL_READY",
    "FAILOVERS",
    "LOOP_LAG",
    "LOOP_LAG_LAST",
    "MAX_ENGINE_LABELS",
    "METRICS",
    "PLAYER_KINDS",
    "SEGMENTS_FETCHED",
    "SEGMENTS_SERVED",
    "SOURCE_LABEL",
    "UPSTREAM_FAILURES",
    "UPSTREAM_LATENCY",
    "EngineLabels",
    "PlayerKind",
    "RequestKind",
    "UpstreamMetrics",
    "engine_label",
]

METRICS = CollectorRegistry(auto_describe=True)
"""Everything counted as it happens, plus the process's own (CPU, memory, descriptors)."""
ProcessCollector(registry=METRICS)

PlayerKind = Literal["hls", "ts"]
PLAYER_KINDS: tuple[PlayerKind, ...] = ("hls", "ts")
"""Every ``kind`` a player can be; each is always exported, 0 while there is none."""

RequestKind = Literal["open", "stop", "playlist", "segment", "init", "key", "stat"]
"""What an upstream request was for."""

MAX_ENGINE_LABELS = 32
OTHER_LABEL = "other"
SOURCE_LABEL = "source"

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_READY_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0)
_LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)

SEGMENTS_FETCHED = Counter(
    "trioproxy_segments_fetched",
    "Segments fetched from upstream into a channel's window",
    registry=METRICS,
)
SEGMENTS_SERVED = Counter(
    "trioproxy_segments_served",
    "Segments served to players",
    ["kind"],
    registry=METRICS,
)
BYTES_RECEIVED = Counter(
    "trioproxy_upstream_received_bytes",
    "Body bytes read from engines and sources, as they arrived (encoded)",
    ["engine"],
    registry=METRICS,
)
BYTES_SENT = Counter(
    "trioproxy_player_sent_bytes",
    "Media bytes (segments, init sections, keys) sent to players",
    ["kind"],
    registry=METRICS,
)
UPSTREAM_LATENCY = Histogram(
    "trioproxy_upstream_request_duration_seconds",
    "Upstream requests, from sending to the end of the body, successful or not",
    ["engine", "kind"],
    buckets=_LATENCY_BUCKETS,
    registry=METRICS,
)
UPSTREAM_FAILURES = Counter(
    "trioproxy_upstream_request_failures",
    "Upstream requests that failed (unreachable, HTTP error, bad or oversized body)",
    ["engine", "kind"],
    registry=METRICS,
)
CHANNEL_READY = Histogram(
    "trioproxy_channel_ready_duration_seconds",
    "From a channel's start to its first servable playlist: session open plus first segments",
    buckets=_READY_BUCKETS,
    registry=METRICS,
)
FAILOVERS = Counter(
    "trioproxy_failovers",
    "Channels moved to another engine session after theirs failed",
    registry=METRICS,
)
LOOP_LAG = Histogram(
    "trioproxy_event_loop_lag_seconds",
    "How late the loop-lag sampler woke up: how long ready tasks wait for the event loop",
    buckets=_LAG_BUCKETS,
    registry=METRICS,
)
LOOP_LAG_LAST = Gauge(
    "trioproxy_event_loop_lag_last_seconds",
    "The loop-lag sampler's latest lateness",
    registry=METRICS,
)

for _kind in PLAYER_KINDS:  # every kind shows from the start, at 0
    SEGMENTS_SERVED.labels(kind=_kind)
    BYTES_SENT.labels(kind=_kind)


class EngineLabels:
    """The bounded ``engine`` label: ``host:port`` of the first ``limit`` engines seen."""

    def __init__(self, limit: int = MAX_ENGINE_LABELS) -> None:
        self.limit = limit
        self._labels: dict[str, str] = {}
        self._lock = threading.Lock()  # prometheus-client may scrape from another thread

    def __call__(self, host: str, port: int) -> str:
        key = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        label = self._labels.get(key)
        if label is not None:
            return label
        with self._lock:
            label = key if len(self._labels) < self.limit else OTHER_LABEL
            return self._labels.setdefault(key, label)


_ENGINE_LABELS = EngineLabels()


def engine_label(host: str, port: int) -> str:
    """The ``engine`` label of the engine at ``host:port`` (see the module)."""
    return _ENGINE_LABELS(host.lower(), port)


class UpstreamMetrics:
    """One engine client's upstream counters, their children resolved once per kind."""

    __slots__ = ("_children", "engine", "received")

    def __init__(self, engine: str = OTHER_LABEL) -> None:
        self.engine = engine
        self.received = BYTES_RECEIVED.labels(engine=engine)
        self._children: dict[RequestKind, tuple[Histogram, Counter]] = {}

    def timed(self, kind: RequestKind) -> _Timed:
        """``with metrics.timed("segment"):`` around one request: its duration, its failure."""
        children = self._children.get(kind)
        if children is None:
            children = (
                UPSTREAM_LATENCY.labels(engine=self.engine, kind=kind),
                UPSTREAM_FAILURES.labels(engine=self.engine, kind=kind),
            )
            self._children[kind] = children
        return _Timed(*children)


class _Timed:
    __slots__ = ("_failures", "_latency", "_start")

    def __init__(self, latency: Histogram, failures: Counter) -> None:
        self._latency = latency
        self._failures = failures
        self._start = 0.0

    def __enter__(self) -> None:
        self._start = trio.current_time()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if error is not None and not isinstance(error, Exception):
            return  # cancelled: no answer to time
        self._latency.observe(trio.current_time() - self._start)
        if error is not None:
            self._failures.inc()
