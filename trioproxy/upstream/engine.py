"""The AceStream engine's HTTP API: open a session, read its playlist and segments, stop it.

Functions here take no timeout: callers put deadlines around them. Every failure leaves as
:class:`~trioproxy.errors.EngineError`.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from ..errors import EngineError

__all__ = ["Engine", "EngineClient", "KeyType", "Session", "stop_url"]

KeyType = Literal["content_id", "infohash", "url"]
"""What a channel streams: an AceStream content id or infohash, or a configured source's URL."""

_QUERY_NAME: dict[str, str] = {"content_id": "id", "infohash": "infohash", "url": "url"}


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
    """An open engine session: what ``/ace/manifest.m3u8?format=json`` answered."""

    playback_url: str
    stat_url: str
    command_url: str
    playback_session_id: str
    is_live: int
    pid: str


def stop_url(command_url: str) -> str:
    return command_url + ("&" if urlsplit(command_url).query else "?") + "method=stop"


def _parse_session(payload: Any, pid: str) -> Session:
    if not isinstance(payload, dict):
        raise EngineError("engine answered something other than a JSON object")
    if payload.get("error"):
        raise EngineError(f"engine refused the session: {str(payload['error'])[:200]}")
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


class EngineClient:
    """Talks to engines over a shared :class:`httpx.AsyncClient` owned by the registry."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    async def open_session(self, engine: Engine, key_type: KeyType, key: str) -> Session:
        """Open a new HLS session with a fresh ``pid``."""
        pid = str(uuid.uuid4())
        params = {_QUERY_NAME[key_type]: key, "format": "json", "pid": pid}
        url = engine.base_url + "/ace/manifest.m3u8"
        try:
            response = await self._http.get(url, params=params)
        except httpx.HTTPError as exc:
            raise EngineError(f"engine {engine.base_url} unreachable: {_describe(exc)}") from exc
        if response.status_code != 200:
            raise EngineError(f"engine {engine.base_url} answered HTTP {response.status_code}")
        try:
            payload = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise EngineError(f"engine {engine.base_url} answered non-JSON") from exc
        session = _parse_session(payload, pid)
        session_url = str(response.url)
        return Session(
            playback_url=str(response.url.join(session.playback_url)),
            stat_url=str(httpx.URL(session_url).join(session.stat_url)) if session.stat_url else "",
            command_url=(
                str(httpx.URL(session_url).join(session.command_url)) if session.command_url else ""
            ),
            playback_session_id=session.playback_session_id,
            is_live=session.is_live,
            pid=pid,
        )

    async def stop_session(self, session: Session) -> None:
        if not session.command_url:
            raise EngineError("session has no command_url to stop it with")
        try:
            response = await self._http.get(stop_url(session.command_url))
        except httpx.HTTPError as exc:
            raise EngineError(f"stop failed: {_describe(exc)}") from exc
        if response.status_code != 200:
            raise EngineError(f"stop answered HTTP {response.status_code}")

    async def get_text(self, url: str) -> tuple[str, str]:
        """GET a playlist: its text and the final URL (after redirects) to resolve URIs against."""
        response = await self._get(url)
        try:
            return response.content.decode("utf-8"), str(response.url)
        except UnicodeDecodeError as exc:
            raise EngineError(f"playlist at {url} is not UTF-8 text") from exc

    async def get_bytes(self, url: str, byte_range: tuple[int, int] | None = None) -> bytes:
        """GET a segment, or the ``(offset, length)`` sub-range of it, whole."""
        if byte_range is not None:
            return await self._get_range(url, *byte_range)
        response = await self._get(url)
        expected = response.headers.get("content-length")
        if expected is not None and expected.isdigit() and int(expected) != len(response.content):
            raise EngineError(f"{url}: truncated ({len(response.content)} of {expected} bytes)")
        return response.content

    async def _get_range(self, url: str, offset: int, length: int) -> bytes:
        headers = {"Range": f"bytes={offset}-{offset + length - 1}"}
        response = await self._get(url, headers)
        data = response.content
        if response.status_code == 200:  # the whole file: take the range ourselves
            data = data[offset : offset + length]
        if len(data) != length:
            raise EngineError(f"{url}: range {offset}+{length} answered with {len(data)} bytes")
        return data

    async def _get(self, url: str, headers: dict[str, str] | None = None) -> httpx.Response:
        try:
            response = await self._http.get(url, headers=headers, follow_redirects=True)
        except httpx.HTTPError as exc:
            raise EngineError(f"{url}: {_describe(exc)}") from exc
        if response.status_code != 200 and not (headers and response.status_code == 206):
            raise EngineError(
                f"{url}: HTTP {response.status_code}", upstream_status=response.status_code
            )
        return response


def _describe(exc: httpx.HTTPError) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
