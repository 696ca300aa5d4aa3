"""The cluster as Prometheus metrics, read at scrape time (many instances only).

What :mod:`.cluster_status` shows, as numbers: the instances alive (as of this instance's last
heartbeat), channels by role here, takeovers and failed store calls, and relay lag. No label
names a channel or an instance: relay lag is the largest of this instance's, on each ``side``
of a relay's connection (see :mod:`.cluster_status` for what each side measures). A single
instance exports none of these.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .cluster_status import ROLES, relay_lags, role_of

if TYPE_CHECKING:
    from prometheus_client import Metric

    from .registry import Registry

__all__ = ["ClusterCollector"]


class ClusterCollector(Collector):
    """Collects ``registry``'s cluster on every scrape."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        registry = self.registry
        membership = registry.membership
        ownership = registry.engines.ownership
        if membership is None or ownership is None:
            return
        yield GaugeMetricFamily(
            "trioproxy_cluster_instances",
            "Instances of the cluster alive (their heartbeat in the store), this one included",
            value=len(membership.instances),
        )
        yield GaugeMetricFamily(
            "trioproxy_cluster_store_reachable",
            "1 when the cluster store answered this instance's last heartbeat, else 0",
            value=1 if membership.reachable else 0,
        )
        yield CounterMetricFamily(
            "trioproxy_cluster_store_failures",
            "Calls to the cluster store that failed (no answer in time, or refused)",
            value=membership.failures,
        )
        yield CounterMetricFamily(
            "trioproxy_cluster_takeovers",
            "Channels whose lapsed lease this instance took over from a lost owner",
            value=ownership.takeovers,
        )
        roles = Counter(role_of(channel) for channel in registry.channels)
        family = GaugeMetricFamily(
            "trioproxy_cluster_channels",
            "Channels here by role: owner (its engine session runs here), relay, pending",
            labels=["role"],
        )
        for role in ROLES:
            family.add_metric([role], roles[role])
        yield family
        on_relay, on_owner, readers = relay_lags(registry)
        yield GaugeMetricFamily(
            "trioproxy_cluster_relay_readers",
            "Relays of other instances reading channels this instance owns",
            value=readers,
        )
        lag = GaugeMetricFamily(
            "trioproxy_cluster_relay_lag_seconds",
            "Largest relay lag here: side=relay, seconds since anything arrived from the owner;"
            " side=owner, how far behind this instance's live edge a relay reads",
            labels=["side"],
        )
        lag.add_metric(["relay"], on_relay)
        lag.add_metric(["owner"], on_owner)
        yield lag
