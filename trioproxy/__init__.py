"""trioproxy: a streaming proxy for AceStream engines, built on Trio's structured concurrency."""

from __future__ import annotations

__version__ = "0.1.0"

from .channel import Channel, ChannelState
from .config import Config, ConfigError, load_config
from .errors import ProxyError
from .registry import Registry
from .server import serve

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
