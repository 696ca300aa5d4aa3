"""``/metrics``: the Prometheus text format of what is counted, what the registry holds, and
(many instances) the cluster."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Metric, generate_latest
from prometheus_client.registry import Collector

from ..channels.cluster_metrics import ClusterCollector
from ..channels.metrics import RegistryCollector
from ..channels.registry import Registry
from ..observability.metrics import METRICS

__all__ = ["CONTENT_TYPE", "MetricsPage"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The text format every Prometheus version reads (our names need nothing newer)."""


class _Counted(Collector):
    """The process-wide counters and histograms, read through."""

    def collect(self) -> Iterator[Metric]:
        yield from METRICS.collect()


class MetricsPage:
    """What one app's ``/metrics`` answers: the process-wide metrics and its registry's."""

    def __init__(self, registry: Registry) -> None:
        self._collectors = CollectorRegistry(auto_describe=False)
        self._collectors.register(_Counted())
        self._collectors.register(RegistryCollector(registry))
        self._collectors.register(ClusterCollector(registry))

    def render(self) -> bytes:
        return generate_latest(self._collectors)
