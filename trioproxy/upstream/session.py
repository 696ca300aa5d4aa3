"""What an engine and an engine session are, as data: the engine the directory knows, the session
an engine opened, and the URLs derived from them. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from ..errors import ContentUnavailable, EngineError

__all__ = [
    "Engine",
    "KeyType",
    "Session",
    "StreamKind",
    "host_port",
    "parse_session",
    "shown",
    "stop_url",
]

KeyType = Literal["content_id", "infohash", "url"]
"""What a channel streams: an AceStream content id or infohash, or a configured source's URL."""

StreamKind = Literal["hls", "ts"]
"""What a session's ``playback_url`` was asked to be: an HLS playlist, or one continuous
MPEG-TS stream."""


@dataclass(frozen=True, slots=True)
class Engine:
    """One engine, as the directory knows it."""

    base_url: str
    container_id: str | None = None
    forwarded: bool = False

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.base_url)
        return parts.port or (443 if parts.scheme == "https" else 80)


@dataclass(frozen=True, slots=True)
class Session:
    """An open engine session: what ``/ace/manifest.m3u8?format=json`` (or, for MPEG-TS,
    ``/ace/getstream?format=json``) answered."""

    playback_url: str
    stat_url: str
    command_url: str
    playback_session_id: str
    is_live: int
    pid: str
    kind: StreamKind = "hls"


def stop_url(command_url: str) -> str:
    return command_url + ("&" if urlsplit(command_url).query else "?") + "method=stop"


def host_port(url: str) -> tuple[str, int] | None:
    """``(host, port)`` of an http(s) URL, lower-cased; None for anything else."""
    try:
        httpx.URL(url)  # what httpx cannot parse (control characters, ...) is no URL to fetch
        parts = urlsplit(url)
        port = parts.port
    except (ValueError, httpx.InvalidURL):
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.hostname.lower(), port or (443 if parts.scheme == "https" else 80)


def shown(url: str) -> str:
    """A URL for messages: scheme, host and port only (no credentials, no path, no query)."""
    target = host_port(url)
    if target is None:
        return "an unusable URL"
    host, port = target
    return f"{urlsplit(url).scheme}://{f'[{host}]' if ':' in host else host}:{port}"


def parse_session(payload: Any, pid: str) -> Session:
    if not isinstance(payload, dict):
        raise EngineError("engine answered something other than a JSON object")
    if payload.get("error"):
        # The engine answered and said no: the content (a dead or unknown id), not the engine.
        raise ContentUnavailable(f"engine refused the session: {str(payload['error'])[:200]}")
    response = payload.get("response")
    if not isinstance(response, dict) or not isinstance(response.get("playback_url"), str):
        raise EngineError("engine answered without a playback_url")
    try:
        is_live = int(response.get("is_live", 1))
    except (TypeError, ValueError):
        is_live = 1
    return Session(
        playback_url=response["playback_url"],
        stat_url=str(response.get("stat_url") or ""),
        command_url=str(response.get("command_url") or ""),
        playback_session_id=str(response.get("playback_session_id") or pid),
        is_live=is_live,
        pid=pid,
    )
