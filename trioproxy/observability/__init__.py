"""What an operator watches: process-wide metrics, the log context and the loop-lag sampler.

The bottom layer: every other layer may count here. What lives in the registry's state
(channels, players, buffers) is read at scrape time by :mod:`trioproxy.channels.metrics`.
"""

from .logs import JsonFormatter, LogContextFilter, bind_log_context, log_fields
from .loop_lag import sample_loop_lag
from .metrics import (
    METRICS,
    PLAYER_KINDS,
    EngineLabels,
    RequestKind,
    UpstreamMetrics,
    engine_label,
)

__all__ = [
    "METRICS",
    "PLAYER_KINDS",
    "EngineLabels",
    "JsonFormatter",
    "LogContextFilter",
    "RequestKind",
    "UpstreamMetrics",
    "bind_log_context",
    "engine_label",
    "log_fields",
    "sample_loop_lag",
]
