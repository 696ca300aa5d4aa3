"""Configuration: one table of settings, read from the environment and overridden by CLI flags.

Every setting has an environment variable and a ``--flag``. A bad value stops start-up with a
:class:`ConfigError` whose message names the variable.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .sources import parse_source_list, parse_sources_file

__all__ = ["SETTINGS", "Config", "ConfigError", "IPNetwork", "add_arguments", "load_config"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ConfigError(ValueError):
    """A setting has a value trioproxy cannot use."""


def _positive_int(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError("must be a whole number ≥ 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ValueError("must be a number of seconds ≥ 0")
    return value


def _positive_seconds(text: str) -> float:
    value = _seconds(text)
    if value <= 0:
        raise ValueError("must be a number of seconds > 0")
    return value


def _http_url(text: str) -> str:
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError as exc:
        raise ValueError("has an invalid port") from exc
    return text.strip().rstrip("/")


def _optional_url(text: str) -> str | None:
    return _http_url(text) if text.strip() else None


def _optional_str(text: str) -> str | None:
    return text if text else None


def _url_list(text: str) -> tuple[str, ...]:
    return tuple(_http_url(item) for item in text.split(",") if item.strip())


def _host_list(text: str) -> tuple[str, ...]:
    """``host``, ``host:port``, ``[v6]:port`` or ``*``, comma-separated, lower-cased."""
    hosts = []
    for item in (part.strip().lower() for part in text.split(",")):
        if not item:
            continue
        if item != "*" and (any(c in item for c in "/@?# ") or item.startswith(":")):
            raise ValueError(f"{item!r} is not a host or host:port")
        hosts.append(item)
    return tuple(hosts)


def _network_list(text: str) -> tuple[IPNetwork, ...]:
    networks = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network") from None
    return tuple(networks)


def _bind(text: str) -> str:
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:8000 or [::1]:8000")
    return text.strip()


def _whole_number(text: str) -> int:
    value = int(text.strip() or "0")
    if value < 0:
        raise ValueError("must be a whole number ≥ 0")
    return value


def _max_height(text: str) -> int:
    """``720``, ``720p`` or ``1280x720``: the tallest picture wanted (0: no limit)."""
    text = text.strip().lower().removesuffix("p")
    if "x" in text:
        width, _, text = text.partition("x")
        if not width.isdigit():
            raise ValueError("must be HEIGHT or WIDTHxHEIGHT, e.g. 720 or 1280x720")
    if not text.isdigit():
        raise ValueError("must be HEIGHT or WIDTHxHEIGHT, e.g. 720 or 1280x720")
    return int(text)


def _sources(text: str) -> tuple[tuple[str, str], ...]:
    return parse_source_list(text)


def _sources_file(text: str) -> tuple[tuple[str, str], ...]:
    if not text.strip():
        return ()
    try:
        with open(text.strip(), encoding="utf-8") as file:
            content = file.read()
    except OSError as exc:
        raise ValueError(f"cannot read it: {exc.strerror or exc}") from None
    return parse_sources_file(content)


def _byte_count(text: str) -> int:
    """A number of bytes ≥ 1, maybe with a binary suffix: ``65536``, ``64K``, ``8M``, ``1G``."""
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    digits = text[:-1] if scale > 1 else text
    if not digits.isdigit() or int(digits) < 1:
        raise ValueError("must be a number of bytes ≥ 1, e.g. 65536, 64K, 8M or 1G")
    return int(digits) * scale


def _log_level(text: str) -> str:
    level = text.strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
    return level


@dataclass(frozen=True)
class Setting:
    field: str
    env: str
    parse: Callable[[str], Any]
    default: str
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.field.replace("_", "-")


SETTINGS: tuple[Setting, ...] = (
    Setting("bind", "TRIOPROXY_BIND", _bind, "127.0.0.1:8000", "address to serve on"),
    Setting(
        "orchestrator_url",
        "ORCHESTRATOR_URL",
        _optional_url,
        "",
        "orchestrator base URL for events and the engine list (unset: no events)",
    ),
    Setting(
        "api_key",
        "API_KEY",
        _optional_str,
        "",
        "Bearer key for the orchestrator and for trioproxy's control endpoints",
    ),
    Setting(
        "engines",
        "TRIOPROXY_ENGINES",
        _url_list,
        "",
        "comma-separated engine base URLs (unset: the orchestrator's /engines)",
    ),
    Setting(
        "max_streams_per_engine",
        "ACEXY_MAX_STREAMS_PER_ENGINE",
        _positive_int,
        "3",
        "channels one engine may carry",
    ),
    Setting(
        "hls_window_size",
        "HLS_WINDOW_SIZE",
        _positive_int,
        "6",
        "segments listed in a served playlist",
    ),
    Setting(
        "hls_max_segments",
        "HLS_MAX_SEGMENTS",
        _positive_int,
        "20",
        "segments kept in memory per channel",
    ),
    Setting(
        "hls_initial_segments",
        "HLS_INITIAL_SEGMENTS",
        _positive_int,
        "2",
        "segments buffered before the first playlist is answered",
    ),
    Setting(
        "hls_buffer_ready_timeout",
        "HLS_BUFFER_READY_TIMEOUT",
        _positive_seconds,
        "30",
        "seconds a first request waits for the initial segments (then 503)",
    ),
    Setting(
        "hls_client_idle_timeout",
        "HLS_CLIENT_IDLE_TIMEOUT",
        _positive_seconds,
        "30",
        "seconds without a request after which a player counts as gone",
    ),
    Setting(
        "proxy_grace_period",
        "PROXY_GRACE_PERIOD",
        _seconds,
        "10",
        "seconds a channel without players lingers before it stops",
    ),
    Setting(
        "shutdown_timeout",
        "TRIOPROXY_SHUTDOWN_TIMEOUT",
        _positive_seconds,
        "10",
        "seconds to stop every channel on SIGTERM/SIGINT",
    ),
    Setting(
        "stop_timeout",
        "TRIOPROXY_STOP_TIMEOUT",
        _positive_seconds,
        "10",
        "seconds a channel's teardown may spend stopping its engine session",
    ),
    Setting(
        "event_drain_timeout",
        "TRIOPROXY_EVENT_DRAIN_TIMEOUT",
        _positive_seconds,
        "300",
        "seconds a stopped channel keeps retrying its undelivered events",
    ),
    Setting(
        "session_timeout",
        "TRIOPROXY_SESSION_TIMEOUT",
        _positive_seconds,
        "30",
        "seconds to wait for an engine to open a session",
    ),
    Setting(
        "upstream_timeout",
        "TRIOPROXY_UPSTREAM_TIMEOUT",
        _positive_seconds,
        "30",
        "seconds an engine may keep failing before its channel ends",
    ),
    Setting(
        "segment_concurrency",
        "TRIOPROXY_SEGMENT_CONCURRENCY",
        _positive_int,
        "3",
        "segment downloads in flight per channel",
    ),
    Setting(
        "failure_backoff",
        "TRIOPROXY_FAILURE_BACKOFF",
        _seconds,
        "10",
        "seconds an id is refused after its channel failed upstream",
    ),
    Setting(
        "engine_refresh_interval",
        "TRIOPROXY_ENGINE_REFRESH",
        _positive_seconds,
        "30",
        "seconds between reads of the orchestrator's /engines",
    ),
    Setting("log_level", "TRIOPROXY_LOG_LEVEL", _log_level, "INFO", "logging level"),
    Setting(
        "max_channels",
        "TRIOPROXY_MAX_CHANNELS",
        _positive_int,
        "100",
        "channels running at once (then 503)",
    ),
    Setting(
        "max_players_per_channel",
        "TRIOPROXY_MAX_PLAYERS_PER_CHANNEL",
        _positive_int,
        "100",
        "players one channel serves at once (then 503)",
    ),
    Setting(
        "max_opening_per_engine",
        "TRIOPROXY_MAX_OPENING_PER_ENGINE",
        _positive_int,
        "2",
        "engine sessions being opened at once on one engine (then 503)",
    ),
    Setting(
        "allow_upstream_hosts",
        "TRIOPROXY_ALLOW_UPSTREAM_HOSTS",
        _host_list,
        "",
        "hosts (host or host:port, * for any) besides known engines the proxy may fetch from",
    ),
    Setting(
        "trusted_proxies",
        "TRIOPROXY_TRUSTED_PROXIES",
        _network_list,
        "",
        "addresses or networks whose X-Forwarded-For is believed",
    ),
    Setting(
        "stall_timeout",
        "TRIOPROXY_STALL_TIMEOUT",
        _positive_seconds,
        "60",
        "seconds without a new segment from the engine before its channel ends",
    ),
    Setting(
        "stat_interval",
        "TRIOPROXY_STAT_INTERVAL",
        _positive_seconds,
        "10",
        "seconds between checks of an engine session's stat_url",
    ),
    Setting(
        "watch_interval",
        "TRIOPROXY_WATCH_INTERVAL",
        _positive_seconds,
        "15",
        "seconds between reads of the orchestrator's running and looping streams",
    ),
    Setting(
        "variant_max_bandwidth",
        "TRIOPROXY_VARIANT_MAX_BANDWIDTH",
        _whole_number,
        "0",
        "from a master playlist, the best variant up to this many bits/s (0: the highest)",
    ),
    Setting(
        "variant_max_resolution",
        "TRIOPROXY_VARIANT_MAX_RESOLUTION",
        _max_height,
        "0",
        "from a master playlist, the best variant up to this height, e.g. 720 or 1280x720",
    ),
    Setting(
        "hls_start_offset",
        "TRIOPROXY_HLS_START_OFFSET",
        _seconds,
        "0",
        "seconds behind live players start, via #EXT-X-START (0: no tag)",
    ),
    Setting(
        "sources",
        "TRIOPROXY_SOURCES",
        _sources,
        "",
        "named HLS sources served at /sources/<name>.m3u8: name=url,name2=url2",
    ),
    Setting(
        "sources_file",
        "TRIOPROXY_SOURCES_FILE",
        _sources_file,
        "",
        "file of named HLS sources, one 'name url' a line",
    ),
    Setting(
        "vod_max_segments",
        "TRIOPROXY_VOD_MAX_SEGMENTS",
        _positive_int,
        "1000",
        "segments kept of finished (#EXT-X-ENDLIST) content, served whole",
    ),
    Setting(
        "max_playlist_bytes",
        "TRIOPROXY_MAX_PLAYLIST_BYTES",
        _byte_count,
        "8M",
        "bytes read at most of one upstream playlist, decoded (a 10,000-segment DVR list: 2-5M)",
    ),
    Setting(
        "max_segment_bytes",
        "TRIOPROXY_MAX_SEGMENT_BYTES",
        _byte_count,
        "64M",
        "bytes read at most of one upstream segment (8 s at 40 Mbit/s: 40M)",
    ),
    Setting(
        "max_init_bytes",
        "TRIOPROXY_MAX_INIT_BYTES",
        _byte_count,
        "1M",
        "bytes read at most of one initialization section (#EXT-X-MAP)",
    ),
    Setting(
        "max_key_bytes",
        "TRIOPROXY_MAX_KEY_BYTES",
        _byte_count,
        "4K",
        "bytes read at most of one encryption key (#EXT-X-KEY; AES-128 keys are 16)",
    ),
)


@dataclass(frozen=True)
class Config:
    bind: str = "127.0.0.1:8000"
    orchestrator_url: str | None = None
    api_key: str | None = dataclasses.field(default=None, repr=False)
    engines: tuple[str, ...] = ()
    max_streams_per_engine: int = 3
    hls_window_size: int = 6
    hls_max_segments: int = 20
    hls_initial_segments: int = 2
    hls_buffer_ready_timeout: float = 30.0
    hls_client_idle_timeout: float = 30.0
    proxy_grace_period: float = 10.0
    shutdown_timeout: float = 10.0
    stop_timeout: float = 10.0
    event_drain_timeout: float = 300.0
    session_timeout: float = 30.0
    upstream_timeout: float = 30.0
    segment_concurrency: int = 3
    failure_backoff: float = 10.0
    engine_refresh_interval: float = 30.0
    log_level: str = "INFO"
    max_channels: int = 100
    max_players_per_channel: int = 100
    max_opening_per_engine: int = 2
    allow_upstream_hosts: tuple[str, ...] = ()
    trusted_proxies: tuple[IPNetwork, ...] = ()
    stall_timeout: float = 60.0
    stat_interval: float = 10.0
    watch_interval: float = 15.0
    variant_max_bandwidth: int = 0
    variant_max_resolution: int = 0
    hls_start_offset: float = 0.0
    vod_max_segments: int = 1000
    max_playlist_bytes: int = 8 << 20
    max_segment_bytes: int = 64 << 20
    max_init_bytes: int = 1 << 20
    max_key_bytes: int = 4 << 10
    sources: tuple[tuple[str, str], ...] = ()
    sources_file: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.hls_window_size > self.hls_max_segments:
            raise ConfigError(
                f"HLS_WINDOW_SIZE ({self.hls_window_size}) must not exceed "
                f"HLS_MAX_SEGMENTS ({self.hls_max_segments})"
            )
        if self.hls_initial_segments > self.hls_max_segments:
            raise ConfigError(
                f"HLS_INITIAL_SEGMENTS ({self.hls_initial_segments}) must not exceed "
                f"HLS_MAX_SEGMENTS ({self.hls_max_segments})"
            )

    def source_url(self, name: str) -> str | None:
        """The URL of the configured source ``name`` (TRIOPROXY_SOURCES first, then the file)."""
        for source, url in (*self.sources, *self.sources_file):
            if source == name:
                return url
        return None

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one ``--flag`` per setting; an absent flag leaves the environment's value."""
    for setting in SETTINGS:
        parser.add_argument(
            setting.flag,
            dest=setting.field,
            default=None,
            metavar=setting.env,
            help=f"{setting.help} [env {setting.env}, default {setting.default or 'unset'}]",
        )


def load_config(
    environ: Mapping[str, str],
    args: argparse.Namespace | None = None,
    overrides: Sequence[tuple[str, str]] = (),
) -> Config:
    """Build a :class:`Config`: defaults < environment < CLI flags < ``overrides``."""
    values: dict[str, Any] = {}
    forced = dict(overrides)
    for setting in SETTINGS:
        source, text = setting.env, environ.get(setting.env)
        flag_value = getattr(args, setting.field, None) if args is not None else None
        if flag_value is not None:
            source, text = setting.flag, flag_value
        if setting.field in forced:
            source, text = setting.flag, forced[setting.field]
        if text is None:
            text = setting.default
        try:
            values[setting.field] = setting.parse(text)
        except ValueError as exc:
            raise ConfigError(f"{source}={text!r}: {exc}") from None
    return Config(**values)
