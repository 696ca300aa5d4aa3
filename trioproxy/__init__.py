"""trioproxy: a streaming proxy for AceStream engines, built on Trio's structured concurrency."""

from __future__ import annotations

from ._version import __version__
from .channels.channel import Channel, ChannelState
from .channels.registry import Registry
from .config import Config, ConfigError, load_config
from .errors import ProxyError
from .service import serve

__all__ = [
    "Channel",
    "ChannelState",
    "Config",
    "ConfigError",
    "ProxyError",
    "Registry",
    "__version__",
    "load_config",
    "serve",
]
