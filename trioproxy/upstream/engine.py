"""The AceStream engine's HTTP API: open a session, read its playlist and segments, stop it.

Every body is streamed and counted as it arrives, and read no further than a bound
(:mod:`.bodies`: playlists, segments, init sections and keys each have one, set by the
``TRIOPROXY_MAX_*_BYTES`` settings; the engine's JSON answers a fixed one). The data it deals in,
engines and sessions, is in :mod:`.session`; this module re-exports it. Nothing is asked for
compressed: media that arrives content-encoded anyway is refused (it is passed through as it is,
never decoded); a gzip-encoded playlist is decoded here, its decoded bytes counted against the
playlist bound.

Functions here take no timeout: callers put deadlines around them. Every failure leaves as
:class:`~trioproxy.errors.EngineError`; an open the engine answered with an error of its own
(``{"response": null, "error": "..."}``: it has nothing for that id) as its subclass
:class:`~trioproxy.errors.ContentUnavailable`, which says nothing against the engine.
"""

from __future__ import annotations

import json
import uuid
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import httpx

from ..errors import EngineError, UpstreamUnusable
from ..observability.metrics import UpstreamMetrics
from .bodies import (
    API_BODY_LIMIT,
    LIMIT_SETTINGS,
    BodyKind,
    BodyTooLarge,
    Gunzip,
    MediaKind,
    ReadLimits,
    content_encoding,
)
from .liveness import Connect
from .reading import read_body
from .session import (
    Engine,
    KeyType,
    Session,
    StreamKind,
    host_port,
    parse_session,
    shown,
    stop_url,
)
from .streams import MediaStream

__all__ = [
    "API_BODY_LIMIT",
    "LIMIT_SETTINGS",
    "BodyKind",
    "BodyTooLarge",
    "Engine",
    "EngineClient",
    "KeyType",
    "MediaKind",
    "MediaStream",
    "ReadLimits",
    "Session",
    "StreamKind",
    "host_port",
    "shown",
    "stop_url",
]

_QUERY_NAME: dict[str, str] = {"content_id": "id", "infohash": "infohash", "url": "url"}
_OPEN_PATH: dict[StreamKind, str] = {"hls": "/ace/manifest.m3u8", "ts": "/ace/getstream"}

MAX_REDIRECTS = 5
"""Reads tried after a response was closed early, for the transport's read to fail (see
:meth:`EngineClient._read_body`)."""

_IDENTITY = {"Accept-Encoding": "identity"}


class EngineClient:
    """Talks to engines over a shared :class:`httpx.AsyncClient` owned by the registry.

    ``bytes_received`` counts the body bytes read from upstream, as they arrived (encoded);
    ``metrics`` counts them too, and times each request, under the client's ``engine`` label.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        limits: ReadLimits | None = None,
        metrics: UpstreamMetrics | None = None,
        connect: Connect | None = None,
    ) -> None:
        self._http = http
        self.connect = connect
        """Opens the idle connection that watches a session's engine (``liveness.py``); None:
        no watch (an in-memory transport, or ``TRIOPROXY_FAILOVER_WATCH=0``)."""
        self.limits = limits or ReadLimits()
        self.bytes_received = 0
        self.metrics = metrics or UpstreamMetrics()

    def check(self, url: str) -> None:
        """Raise :class:`~trioproxy.errors.UpstreamRefused` for a URL not to be fetched (each
        redirect hop is checked too). Here: any; a guarded client narrows it."""

    async def open_session(
        self, engine: Engine, key_type: KeyType, key: str, kind: StreamKind = "hls"
    ) -> Session:
        """Open a new session with a fresh ``pid``: HLS (``/ace/manifest.m3u8``), or
        ``kind="ts"`` one continuous MPEG-TS stream (``/ace/getstream``)."""
        with self.metrics.timed("open"):
            return await self._open_session(engine, key_type, key, kind)

    async def _open_session(
        self, engine: Engine, key_type: KeyType, key: str, kind: StreamKind
    ) -> Session:
        pid = str(uuid.uuid4())
        params = {_QUERY_NAME[key_type]: key, "format": "json", "pid": pid}
        url = engine.base_url + _OPEN_PATH[kind]
        request = self._http.build_request("GET", url, params=params, headers=_IDENTITY)
        try:
            response = await self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise EngineError(f"engine {engine.base_url} unreachable: {_describe(exc)}") from exc
        try:
            if response.status_code != 200:
                raise EngineError(f"engine {engine.base_url} answered HTTP {response.status_code}")
            body = await self._read_api_answer(response, f"engine {engine.base_url}")
        finally:
            await response.aclose()
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise EngineError(f"engine {engine.base_url} answered non-JSON") from exc
        session = parse_session(payload, pid)
        session_url = response.url
        return Session(
            playback_url=str(session_url.join(session.playback_url)),
            stat_url=str(session_url.join(session.stat_url)) if session.stat_url else "",
            command_url=str(session_url.join(session.command_url)) if session.command_url else "",
            playback_session_id=session.playback_session_id,
            is_live=session.is_live,
            pid=pid,
            kind=kind,
        )

    async def stop_session(self, session: Session) -> None:
        with self.metrics.timed("stop"):
            await self._stop_session(session)

    async def _stop_session(self, session: Session) -> None:
        if not session.command_url:
            raise EngineError("session has no command_url to stop it with")
        request = self._http.build_request("GET", stop_url(session.command_url), headers=_IDENTITY)
        try:
            response = await self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise EngineError(f"stop failed: {_describe(exc)}") from exc
        try:
            if response.status_code != 200:
                raise EngineError(f"stop answered HTTP {response.status_code}")
            await self._read_api_answer(response, "stop")
        finally:
            await response.aclose()

    @asynccontextmanager
    async def open_stream(self, url: str) -> AsyncIterator[MediaStream]:
        """GET a stream that does not end (a session's MPEG-TS playback), redirects checked
        as for every fetch; its body read with :meth:`MediaStream.read`, every byte counted.
        Closed on leaving."""
        async with self._open(url, _IDENTITY) as response:
            self._refuse_encoded(response, url, "segment")
            yield MediaStream(response, self._count)

    def _count(self, size: int) -> None:
        self.bytes_received += size
        self.metrics.received.inc(size)

    async def get_text(
        self, url: str, kind: Literal["playlist", "stat"] = "playlist"
    ) -> tuple[str, str]:
        """GET a playlist: its text and the final URL (after redirects) to resolve URIs against.

        ``kind`` says what is read, for the metrics (a ``stat_url`` answer is read here too).
        """
        with self.metrics.timed(kind):
            return await self._get_text(url)

    async def _get_text(self, url: str) -> tuple[str, str]:
        limit = self.limits.playlist
        async with self._open(url, _IDENTITY) as response:
            encoding = content_encoding(response)
            if encoding not in ("", "gzip", "x-gzip"):
                raise EngineError(
                    f"{shown(url)}: playlist arrived content-encoded ({encoding[:40]}), "
                    "which was not asked for; refused"
                )
            self._refuse_declared_size(response, url, "playlist", limit)
            data, more = await self._read_body(response, keep=limit, gunzip=bool(encoding))
            if more:
                decoded = " decodes to" if encoding else " is"
                raise self._too_large(url, "playlist", limit, decoded)
            final_url = str(response.url)
        try:
            return data.decode("utf-8"), final_url
        except UnicodeDecodeError as exc:
            raise EngineError(f"playlist at {url} is not UTF-8 text") from exc

    async def get_bytes(
        self,
        url: str,
        byte_range: tuple[int, int] | None = None,
        kind: MediaKind = "segment",
    ) -> bytes:
        """GET a segment, init section or key, or the ``(offset, length)`` sub-range of it."""
        with self.metrics.timed(kind):
            return await self._get_bytes(url, byte_range, kind)

    async def _get_bytes(
        self, url: str, byte_range: tuple[int, int] | None, kind: MediaKind
    ) -> bytes:
        if byte_range is not None:
            return await self._get_range(url, *byte_range, kind)
        limit = self.limits.of(kind)
        async with self._open(url, _IDENTITY) as response:
            self._refuse_encoded(response, url, kind)
            self._refuse_declared_size(response, url, kind, limit)
            data, more = await self._read_body(response, keep=limit)
            if more:
                raise self._too_large(url, kind, limit, " is")
            expected = response.headers.get("content-length")
        if expected is not None and expected.isdigit() and int(expected) != len(data):
            raise EngineError(f"{url}: truncated ({len(data)} of {expected} bytes)")
        return data

    async def _get_range(self, url: str, offset: int, length: int, kind: MediaKind) -> bytes:
        limit = self.limits.of(kind)
        if length > limit:
            raise self._too_large(url, kind, limit, f" range of {length} bytes is")
        headers = {"Range": f"bytes={offset}-{offset + length - 1}", **_IDENTITY}
        async with self._open(url, headers, partial=True) as response:
            self._refuse_encoded(response, url, kind)
            if response.status_code == 200:  # the whole file: take the range ourselves
                data, _ = await self._read_body(response, keep=length, skip=offset, until_full=True)
            else:
                data, more = await self._read_body(response, keep=length)
                if more:
                    raise EngineError(f"{url}: range {offset}+{length} answered with more bytes")
        if len(data) != length:
            raise EngineError(f"{url}: range {offset}+{length} answered with {len(data)} bytes")
        return data

    @asynccontextmanager
    async def _open(
        self, url: str, headers: dict[str, str], *, partial: bool = False
    ) -> AsyncIterator[httpx.Response]:
        """The response to GET ``url`` (its body not read yet), closed on leaving.

        Redirects are followed by hand: each hop is checked before it is requested, and a
        redirect's body is never read.
        """
        for _ in range(MAX_REDIRECTS + 1):
            self.check(url)
            try:
                request = self._http.build_request("GET", url, headers=headers)
                response = await self._http.send(request, stream=True)
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                raise EngineError(f"{url}: {_describe(exc)}") from exc
            try:
                if response.is_redirect and "location" in response.headers:
                    try:
                        url = str(response.url.join(response.headers["location"]))
                    except httpx.InvalidURL as exc:
                        raise EngineError(f"{url}: redirected to an invalid URL") from exc
                    continue
                # A partial answer is what a request with a Range header asks for.
                if response.status_code != 200 and not (partial and response.status_code == 206):
                    raise EngineError(
                        f"{url}: HTTP {response.status_code}", upstream_status=response.status_code
                    )
                yield response
                return
            finally:
                await response.aclose()
        raise EngineError(f"{url}: more than {MAX_REDIRECTS} redirects")

    async def _read_body(
        self,
        response: httpx.Response,
        *,
        keep: int,
        skip: int = 0,
        gunzip: bool = False,
        until_full: bool = False,
    ) -> tuple[bytes, bool]:
        """Up to ``keep`` bytes of the body after its first ``skip`` (decoded when ``gunzip``),
        and whether it went on past them: reading stops at the first byte too many (or, with
        ``until_full``, once ``keep`` bytes are had). A gzip body is bounded twice: what arrives
        and what it decodes to.
        """
        kept = bytearray()
        have = received = 0
        more = False
        decoder = Gunzip() if gunzip else None

        def take(chunk: bytes) -> bool:
            """Count and keep ``chunk``; True once reading should stop."""
            nonlocal have, received, more, skip
            self.bytes_received += len(chunk)
            received += len(chunk)
            if decoder is not None:
                more = received > keep  # bounds what is read, even if it decodes to nil
                chunk = decoder.feed(chunk, keep - have + 1)
            elif skip:
                dropped = min(skip, len(chunk))
                chunk, skip = chunk[dropped:], skip - dropped
            if have + len(chunk) > keep:
                chunk, more = chunk[: keep - have], True
            if chunk:
                kept.extend(chunk)
                have += len(chunk)
            return more or (until_full and have == keep)

        try:
            await read_body(response, take)
        except (httpx.HTTPError, httpx.StreamError) as exc:
            raise EngineError(f"{shown(str(response.url))}: {_describe(exc)}") from exc
        except zlib.error as exc:
            raise EngineError(f"{shown(str(response.url))}: playlist is not valid gzip") from exc
        finally:
            self.metrics.received.inc(received)  # once per body, not per chunk
        return bytes(kept), more

    async def _read_api_answer(self, response: httpx.Response, who: str) -> bytes:
        data, more = await self._read_body(response, keep=API_BODY_LIMIT)
        if more:
            raise EngineError(f"{who} answered more than {API_BODY_LIMIT} bytes; refused")
        return data

    def _refuse_encoded(self, response: httpx.Response, url: str, kind: MediaKind) -> None:
        encoding = content_encoding(response)
        if encoding:
            raise UpstreamUnusable(
                f"{shown(url)}: {kind} arrived content-encoded ({encoding[:40]}) though identity "
                "was asked for; media is passed through as it is, never decoded: refused"
            )

    def _refuse_declared_size(
        self, response: httpx.Response, url: str, kind: BodyKind, limit: int
    ) -> None:
        length = response.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise self._too_large(url, kind, limit, f" of {length} bytes is")

    def _too_large(self, url: str, kind: BodyKind, limit: int, what: str) -> BodyTooLarge:
        return BodyTooLarge(
            f"{shown(url)}: {kind}{what} larger than {limit} bytes; refused "
            f"({LIMIT_SETTINGS[kind]} raises the bound)"
        )


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
