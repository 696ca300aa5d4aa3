"""The settings, each declared once, as a field of :class:`Config`.

A field declared with :func:`setting` carries its environment variable, parser and help; its name
gives the attribute and the ``--flag``, its default the default. The loader, the ``--help`` text
and the README's table all read :data:`SETTINGS`, which is derived from these fields (those of
:mod:`.basic` first, then :mod:`.cluster`'s, in declaration order).

To add a setting, add one field::

    chunk_size: int = setting("TRIOPROXY_CHUNK_SIZE", 65536, parse.positive_int, "bytes per read")

then regenerate the README's table with ``python -m trioproxy.config``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from . import parsers as parse
from .channels import ChannelEntry
from .cluster import ClusterSettings
from .declare import ConfigError, Setting, setting, settings_of
from .parsers import IPNetwork
from .tuner import device_id

__all__ = ["SETTINGS", "Config", "ConfigError", "Setting", "setting", "settings_of"]


@dataclass(frozen=True)
class Config(ClusterSettings):
    """Every setting of trioproxy; :func:`~trioproxy.config.load_config` builds one.

    The basic settings (:class:`~trioproxy.config.basic.BasicSettings`) come first, then the
    cluster's (:class:`~trioproxy.config.cluster.ClusterSettings`); here the
    limits, failover, variants, sources and the bounds on what is read from upstream.
    """

    max_channels: int = setting(
        "TRIOPROXY_MAX_CHANNELS",
        100,
        parse.positive_int,
        "channels running at once; over it a new channel gets `503` + `Retry-After`",
    )
    max_players_per_channel: int = setting(
        "TRIOPROXY_MAX_PLAYERS_PER_CHANNEL",
        100,
        parse.positive_int,
        "players one channel serves at once; a new player over it gets `503`",
    )
    max_opening_per_engine: int = setting(
        "TRIOPROXY_MAX_OPENING_PER_ENGINE",
        2,
        parse.positive_int,
        "engine sessions being opened at once on one engine; a burst over it gets `503`",
    )
    allow_upstream_hosts: tuple[str, ...] = setting(
        "TRIOPROXY_ALLOW_UPSTREAM_HOSTS",
        (),
        parse.host_list,
        "hosts (`host`, `host:port`, `*`) every channel may fetch playlists and segments from, "
        "besides its own engine or source",
    )
    trusted_proxies: tuple[IPNetwork, ...] = setting(
        "TRIOPROXY_TRUSTED_PROXIES",
        (),
        parse.network_list,
        "addresses or networks (CIDR) whose `X-Forwarded-For` is believed",
    )
    max_players_per_address: int = setting(
        "TRIOPROXY_MAX_PLAYERS_PER_ADDRESS",
        32,
        parse.whole_number,
        "players one client address has on all channels at once (IPv6: per /64); a new one "
        "over it gets `503` (0: no cap)",
    )
    max_channels_per_address: int = setting(
        "TRIOPROXY_MAX_CHANNELS_PER_ADDRESS",
        16,
        parse.whole_number,
        "running channels one client address started; a new one over it gets `503` (0: no cap)",
    )
    max_opening_per_address: int = setting(
        "TRIOPROXY_MAX_OPENING_PER_ADDRESS",
        4,
        parse.whole_number,
        "engine sessions being opened at once for channels one client address started; over "
        "it, `503` (0: no cap)",
    )
    media_servers: tuple[IPNetwork, ...] = setting(
        "TRIOPROXY_MEDIA_SERVERS",
        (),
        parse.network_list,
        "addresses or networks (CIDR) of media servers (Plex, Jellyfin, Emby): exempt from the "
        "per-address caps, and need no player key (README: Media servers and IPTV apps)",
    )
    upstream_mode: Literal["ts", "hls"] = setting(
        "TRIOPROXY_UPSTREAM_MODE",
        "ts",
        parse.upstream_mode,
        "how engine sessions are read: `ts` (one MPEG-TS connection per session, cut into "
        "segments by the proxy; a playback URL that answers a playlist is read as HLS) or "
        "`hls` (the engine's own playlist and segments); configured sources are always HLS",
    )
    segment_target: float = setting(
        "TRIOPROXY_SEGMENT_TARGET",
        2.0,
        parse.positive_seconds,
        "seconds of media per segment the proxy cuts from an engine's MPEG-TS (at the next "
        "keyframe from then on)",
    )
    stall_timeout: float = setting(
        "TRIOPROXY_STALL_TIMEOUT",
        60.0,
        parse.positive_seconds,
        "seconds without a new segment before a session fails as stalled; with a target "
        "duration known, at most `TRIOPROXY_FAILOVER_STALL_TARGETS` of them",
    )
    failover_playlist_targets: float = setting(
        "TRIOPROXY_FAILOVER_PLAYLIST_TARGETS",
        3.0,
        parse.seconds,
        "target durations an engine playlist may keep failing or hanging before the channel "
        "moves to a new engine session (0: only `TRIOPROXY_UPSTREAM_TIMEOUT`)",
    )
    failover_stall_targets: float = setting(
        "TRIOPROXY_FAILOVER_STALL_TARGETS",
        6.0,
        parse.seconds,
        "target durations without a new segment before the channel moves to a new engine "
        "session (0: only `TRIOPROXY_STALL_TIMEOUT`)",
    )
    failover_max_switches: int = setting(
        "TRIOPROXY_FAILOVER_MAX_SWITCHES",
        5,
        parse.whole_number,
        "new engine sessions a channel may move to within `TRIOPROXY_FAILOVER_WINDOW`; one "
        "more failure ends it (0: no failover, a failed session ends its channel)",
    )
    failover_window: float = setting(
        "TRIOPROXY_FAILOVER_WINDOW",
        300.0,
        parse.positive_seconds,
        "seconds over which `TRIOPROXY_FAILOVER_MAX_SWITCHES` counts",
    )
    failover_backoff: float = setting(
        "TRIOPROXY_FAILOVER_BACKOFF",
        1.0,
        parse.seconds,
        "seconds before the second switch within the window, doubling for each further one "
        "(the first is at once), at most 8 times this",
    )
    failover_cooldown: float = setting(
        "TRIOPROXY_FAILOVER_COOLDOWN",
        30.0,
        parse.seconds,
        "seconds an engine whose session failed is avoided (its breaker is open) while "
        "another engine has room",
    )
    failover_watch: bool = setting(
        "TRIOPROXY_FAILOVER_WATCH",
        True,
        parse.boolean,
        "hold one idle connection to each session's engine: when the engine closes it and "
        "refuses a new one, the channel moves to a new session at once, not at its next "
        "playlist reload",
    )
    stat_interval: float = setting(
        "TRIOPROXY_STAT_INTERVAL",
        10.0,
        parse.positive_seconds,
        "seconds between checks of an engine session's `stat_url`",
    )
    watch_interval: float = setting(
        "TRIOPROXY_WATCH_INTERVAL",
        15.0,
        parse.positive_seconds,
        "seconds between reads of the orchestrator's running and looping streams",
    )
    variant_max_bandwidth: int = setting(
        "TRIOPROXY_VARIANT_MAX_BANDWIDTH",
        0,
        parse.whole_number,
        "from a master playlist, the best variant up to this many bits/s (0: the highest)",
    )
    variant_max_resolution: int = setting(
        "TRIOPROXY_VARIANT_MAX_RESOLUTION",
        0,
        parse.max_height,
        "from a master playlist, the best variant up to this height, e.g. `720` or `1280x720`",
    )
    hls_start_offset: float = setting(
        "TRIOPROXY_HLS_START_OFFSET",
        0.0,
        parse.seconds,
        "seconds behind live players start, via `#EXT-X-START` (0: no tag)",
    )
    sources: tuple[tuple[str, str], ...] = setting(
        "TRIOPROXY_SOURCES",
        (),
        parse.source_list,
        "named HLS sources served at `/sources/<name>.m3u8`: `name=url,name2=url2`",
    )
    sources_file: tuple[tuple[str, str], ...] = setting(
        "TRIOPROXY_SOURCES_FILE",
        (),
        parse.sources_file,
        "file of named HLS sources, one `name url` a line (`#` comments)",
    )
    channels_file: tuple[ChannelEntry, ...] | None = setting(
        "TRIOPROXY_CHANNELS_FILE",
        None,
        parse.channels_file,
        "CSV file of the channels listed at `/playlist.m3u`, one `name,stream,tvg-id,logo,group` "
        "a line (README: M3U playlist); unset: no playlist",
    )
    epg_url: str | None = setting(
        "TRIOPROXY_EPG_URL",
        None,
        parse.optional_url,
        "XMLTV guide URL announced in `/playlist.m3u` (`url-tvg`) when `TRIOPROXY_EPG_SOURCES` "
        "is unset",
    )
    epg_sources: tuple[str, ...] = setting(
        "TRIOPROXY_EPG_SOURCES",
        (),
        parse.url_list,
        "comma-separated XMLTV guide URLs (gzip or plain), fetched in the background and served "
        "at `/epg.xml`, filtered to the tvg-ids of `TRIOPROXY_CHANNELS_FILE` (README: Guide)",
    )
    epg_refresh: float = setting(
        "TRIOPROXY_EPG_REFRESH",
        21600.0,
        parse.positive_seconds,
        "seconds between fetches of each guide; a failed fetch is tried again after 10 "
        "minutes, then 20, 40, ... (at most this)",
    )
    epg_timeout: float = setting(
        "TRIOPROXY_EPG_TIMEOUT",
        300.0,
        parse.positive_seconds,
        "seconds one fetch of a guide may take, whole; then it fails",
    )
    epg_max_bytes: int = setting(
        "TRIOPROXY_EPG_MAX_BYTES",
        200 << 20,
        parse.byte_count,
        "bytes read at most of one guide as it arrives (gzip may decode to 16 times that)",
    )
    state_dir: str | None = setting(
        "TRIOPROXY_STATE_DIR",
        None,
        parse.optional_path,
        "directory the last good guides are kept in, so a restart serves them at once; unset: "
        "`$XDG_STATE_HOME/trioproxy`, else `~/.local/state/trioproxy`",
    )
    tuner_name: str = setting(
        "TRIOPROXY_TUNER_NAME",
        "trioproxy",
        parse.tuner_name,
        "the HDHomeRun tuner's `FriendlyName`, as media servers show it",
    )
    tuner_device_id: str | None = setting(
        "TRIOPROXY_TUNER_DEVICE_ID",
        None,
        device_id,
        "the HDHomeRun `DeviceID` (8 hex digits, the last a check digit); unset: derived from "
        "`TRIOPROXY_TUNER_NAME` and `TRIOPROXY_BIND`",
    )
    tuner_count: int = setting(
        "TRIOPROXY_TUNER_COUNT",
        0,
        parse.whole_number,
        "the HDHomeRun `TunerCount` at most; 0: engines × `ACEXY_MAX_STREAMS_PER_ENGINE` "
        "(and never over `TRIOPROXY_MAX_CHANNELS`)",
    )
    xtream_users: tuple[tuple[str, str], ...] = setting(
        "TRIOPROXY_XTREAM_USERS",
        (),
        parse.xtream_users,
        "Xtream Codes logins for IPTV apps, `name:password,...`; each password is also a player "
        "key; unset: no Xtream API",
        repr=False,
    )
    vod_max_segments: int = setting(
        "TRIOPROXY_VOD_MAX_SEGMENTS",
        1000,
        parse.positive_int,
        "segments kept of finished (`#EXT-X-ENDLIST`) content, served whole",
    )
    max_playlist_bytes: int = setting(
        "TRIOPROXY_MAX_PLAYLIST_BYTES",
        8 << 20,
        parse.byte_count,
        "bytes read at most of one upstream playlist, decoded (a 10,000-segment DVR list: 2-5M)",
    )
    max_segment_bytes: int = setting(
        "TRIOPROXY_MAX_SEGMENT_BYTES",
        64 << 20,
        parse.byte_count,
        "bytes read at most of one upstream segment (8 s at 40 Mbit/s: 40M)",
    )
    max_init_bytes: int = setting(
        "TRIOPROXY_MAX_INIT_BYTES",
        1 << 20,
        parse.byte_count,
        "bytes read at most of one initialization section (`#EXT-X-MAP`)",
    )
    playlist_thread_bytes: int = setting(
        "TRIOPROXY_PLAYLIST_THREAD_BYTES",
        64 << 10,
        parse.byte_count,
        "playlists longer than this (~1,000 segments) are read in a worker thread, so a large "
        "one never stalls other channels",
    )
    max_key_bytes: int = setting(
        "TRIOPROXY_MAX_KEY_BYTES",
        4 << 10,
        parse.byte_count,
        "bytes read at most of one encryption key (`#EXT-X-KEY`; AES-128 keys are 16)",
    )
    memory_budget: int = setting(
        "TRIOPROXY_MEMORY_BUDGET",
        512 << 20,
        parse.byte_count,
        "bytes every channel's segments, init sections, keys and MPEG-TS copies may hold "
        "together; a new channel first takes what other channels hold beyond their served "
        "windows, and one that still will not fit gets `503` + `Retry-After`",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
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
        if self.epg_sources and not any(c.tvg_id for c in self.channels_file or ()):
            raise ConfigError(
                "TRIOPROXY_EPG_SOURCES needs a TRIOPROXY_CHANNELS_FILE with tvg-ids: the guide "
                "serves the programmes of those channels only"
            )
        for channel in self.channels_file or ():
            if channel.kind == "source" and self.source_url(channel.key) is None:
                raise ConfigError(
                    f"TRIOPROXY_CHANNELS_FILE line {channel.line}: no source named "
                    f"{channel.key!r} in TRIOPROXY_SOURCES or TRIOPROXY_SOURCES_FILE"
                )

    def source_url(self, name: str) -> str | None:
        """The URL of the configured source ``name`` (TRIOPROXY_SOURCES first, then the file)."""
        for source, url in (*self.sources, *self.sources_file):
            if source == name:
                return url
        return None

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)


SETTINGS: tuple[Setting, ...] = settings_of(Config)
"""Every setting, in the order of :class:`Config`'s fields."""
