"""The basic settings: where to serve, whom to tell, which engines, what players get, how long
things may take, logging. :class:`~trioproxy.config.settings.Config` adds the rest; every field is
declared once, with :func:`~trioproxy.config.declare.setting`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from . import parsers as parse
from .declare import setting

__all__ = ["BasicSettings"]


@dataclass(frozen=True)
class BasicSettings:
    """The first part of :class:`~trioproxy.config.settings.Config`."""

    bind: str = setting(
        "TRIOPROXY_BIND", "127.0.0.1:8000", parse.bind_address, "address to serve on"
    )
    orchestrator_url: str | None = setting(
        "ORCHESTRATOR_URL",
        None,
        parse.optional_url,
        "orchestrator base URL for events and the engine list (unset: no events)",
    )
    orchestrator_api: Literal["auto", "v1", "v2"] = setting(
        "TRIOPROXY_ORCHESTRATOR_API",
        "auto",
        parse.orchestrator_api,
        "the orchestrator's API: `v1` (Python), `v2` (Go, port 8083 or `…:8000/api/v1`), or "
        "`auto` (found from its answers, logged at start-up, shown in `/proxy/status`)",
    )
    api_key: str | None = setting(
        "API_KEY",
        None,
        parse.api_key,
        "Bearer key for the orchestrator and for trioproxy's control endpoints",
        repr=False,
    )
    open_control: bool = setting(
        "TRIOPROXY_OPEN_CONTROL",
        False,
        parse.boolean,
        "`1`: without `API_KEY`, allow control requests (`DELETE /proxy/channels/…`) from anyone "
        "even when `TRIOPROXY_BIND` is beyond loopback (else they get `403`)",
    )
    player_keys: tuple[str, ...] = setting(
        "TRIOPROXY_PLAYER_KEYS",
        (),
        parse.player_keys,
        "comma-separated keys players must give as `?key=` to start or watch a channel "
        "(README: Player keys); unset, and no keys file: stream URLs are open",
        repr=False,
    )
    player_keys_file: tuple[str, ...] = setting(
        "TRIOPROXY_PLAYER_KEYS_FILE",
        (),
        parse.player_keys_file,
        "file of player keys, one a line (`#` comments), added to `TRIOPROXY_PLAYER_KEYS`",
        repr=False,
    )
    engines: tuple[str, ...] = setting(
        "TRIOPROXY_ENGINES",
        (),
        parse.url_list,
        "comma-separated engine base URLs; unset: the orchestrator's `/engines` (healthy ones), "
        "or `http://127.0.0.1:6878` without an orchestrator",
    )
    max_streams_per_engine: int = setting(
        "ACEXY_MAX_STREAMS_PER_ENGINE", 3, parse.positive_int, "channels one engine may carry"
    )
    hls_window_size: int = setting(
        "HLS_WINDOW_SIZE", 6, parse.positive_int, "segments listed in a served playlist"
    )
    hls_max_segments: int = setting(
        "HLS_MAX_SEGMENTS", 20, parse.positive_int, "segments kept in memory per channel"
    )
    hls_initial_segments: int = setting(
        "HLS_INITIAL_SEGMENTS",
        2,
        parse.positive_int,
        "segments buffered before the first playlist is answered",
    )
    hls_buffer_ready_timeout: float = setting(
        "HLS_BUFFER_READY_TIMEOUT",
        30.0,
        parse.positive_seconds,
        "seconds a first request waits for the initial segments (then 503)",
    )
    hls_client_idle_timeout: float = setting(
        "HLS_CLIENT_IDLE_TIMEOUT",
        30.0,
        parse.positive_seconds,
        "seconds without a request after which a player counts as gone",
    )
    stream_mode: Literal["HLS", "TS"] = setting(
        "STREAM_MODE",
        "HLS",
        parse.stream_mode,
        "`HLS` (a playlist) or `TS` (one continuous MPEG-TS stream): what `/ace/getstream` "
        "answers without `format=`, and the kind of link `/playlist.m3u` lists without it",
    )
    proxy_grace_period: float = setting(
        "PROXY_GRACE_PERIOD",
        10.0,
        parse.seconds,
        "seconds a channel without players lingers before it stops",
    )
    ts_max_lag: int = setting(
        "TRIOPROXY_TS_MAX_LAG",
        2,
        parse.positive_int,
        "segments an MPEG-TS player may fall behind the live edge before it is disconnected",
    )
    ts_keepalive: float = setting(
        "TRIOPROXY_TS_KEEPALIVE",
        5.0,
        parse.seconds,
        "seconds an MPEG-TS response stays silent before the first media, then null packets "
        "every 0.5 s until media (0: nothing until media); `keepalive=` overrides it per "
        "request; lineup URLs use `keepalive=0`",
    )
    shutdown_timeout: float = setting(
        "TRIOPROXY_SHUTDOWN_TIMEOUT",
        10.0,
        parse.positive_seconds,
        "seconds to stop every channel on SIGTERM/SIGINT",
    )
    header_timeout: float = setting(
        "TRIOPROXY_HEADER_TIMEOUT",
        5.0,
        parse.positive_seconds,
        "seconds a client has to send a whole request head, from its first byte (or from "
        "connecting); then the connection is closed",
    )
    send_timeout: float = setting(
        "TRIOPROXY_SEND_TIMEOUT",
        20.0,
        parse.positive_seconds,
        "seconds a response may make no progress (a client not reading) before its connection "
        "is closed",
    )
    max_connections: int = setting(
        "TRIOPROXY_MAX_CONNECTIONS",
        0,
        parse.whole_number,
        "client connections open at once; 0: derived from the open-file limit, leaving room for "
        "upstream connections",
    )
    max_connections_per_address: int = setting(
        "TRIOPROXY_MAX_CONNECTIONS_PER_ADDRESS",
        64,
        parse.whole_number,
        "connections (behind a trusted proxy: requests in flight) one client address may hold; "
        "0: no limit",
    )
    stop_timeout: float = setting(
        "TRIOPROXY_STOP_TIMEOUT",
        10.0,
        parse.positive_seconds,
        "seconds a channel's teardown may spend stopping its engine session",
    )
    event_drain_timeout: float = setting(
        "TRIOPROXY_EVENT_DRAIN_TIMEOUT",
        300.0,
        parse.positive_seconds,
        "seconds a stopped channel keeps retrying its undelivered events",
    )
    session_timeout: float = setting(
        "TRIOPROXY_SESSION_TIMEOUT",
        30.0,
        parse.positive_seconds,
        "seconds to wait for an engine to open a session",
    )
    upstream_timeout: float = setting(
        "TRIOPROXY_UPSTREAM_TIMEOUT",
        30.0,
        parse.positive_seconds,
        "seconds an engine playlist may keep failing (or its segments) before its session "
        "fails; with a target duration known, at most "
        "`TRIOPROXY_FAILOVER_PLAYLIST_TARGETS` of them",
    )
    segment_concurrency: int = setting(
        "TRIOPROXY_SEGMENT_CONCURRENCY",
        3,
        parse.positive_int,
        "segment downloads in flight per channel",
    )
    failure_backoff: float = setting(
        "TRIOPROXY_FAILURE_BACKOFF",
        10.0,
        parse.seconds,
        "seconds an id is refused after its channel failed upstream",
    )
    engine_refresh_interval: float = setting(
        "TRIOPROXY_ENGINE_REFRESH",
        30.0,
        parse.positive_seconds,
        "seconds between reads of the orchestrator's `/engines`",
    )
    log_level: str = setting("TRIOPROXY_LOG_LEVEL", "INFO", parse.log_level, "logging level")
    log_format: Literal["text", "json"] = setting(
        "TRIOPROXY_LOG_FORMAT",
        "text",
        parse.log_format,
        "`text`, or `json`: one object per line (`time`, `level`, `logger`, `message`, "
        "`channel`, `engine`)",
    )
