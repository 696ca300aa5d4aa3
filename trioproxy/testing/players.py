"""An HLS player simulator: what hls.js does on a live playlist, and the books of what it saw.

A :class:`Player` opens a channel (``/ace/getstream``), reloads the playlist at its pace (the
target duration, a fixed period, or hls.js's rule: :func:`hlsjs_reload_interval`), and fetches
each segment it has not seen listed before, once, in order — on its first load only the newest
``start_with``. Every answer goes into a :class:`PlayerLog` (shared by many players, or one's
own): statuses by kind, timings, the sequence numbers fetched and the gaps between them, errors.

A player talks through a :class:`Getter`: :class:`HttpxGetter` for an ``httpx.AsyncClient``
(in memory over ``httpx.ASGITransport`` or on a socket); anything answering ``status``,
``headers`` and ``body`` will do (the benchmarks' lean HTTP/1.1 client does).
"""

from __future__ import annotations

import math
import re
import secrets
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urljoin

import httpx
import trio

__all__ = [
    "CONNECTION_ERRORS",
    "Answer",
    "Answered",
    "Getter",
    "HttpxGetter",
    "Player",
    "PlayerLog",
    "Reply",
    "hlsjs_next_reload",
    "hlsjs_reload_interval",
    "parse_playlist",
    "random_content_id",
    "segment_sequence",
]

CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    EOFError,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
    httpx.HTTPError,
)
"""What a getter may raise when the connection fails: logged as an error, the player stops."""

_SEQUENCE = re.compile(r"(\d+)\.[A-Za-z0-9]+$")


class Reply(Protocol):
    """An HTTP answer, as far as a player reads it."""

    @property
    def status(self) -> int: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def body(self) -> bytes: ...


class Getter(Protocol):
    """GETs a URL (absolute, or a path the getter resolves against its server)."""

    async def __call__(self, url: str) -> Reply: ...


@dataclass
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass
class HttpxGetter:
    """GET with an ``httpx.AsyncClient``; relative URLs resolve against ``base`` (or the
    client's own ``base_url``)."""

    client: httpx.AsyncClient
    base: str = ""

    async def __call__(self, url: str) -> Reply:
        response = await self.client.get(urljoin(self.base, url) if self.base else url)
        return Answer(response.status_code, response.headers, response.content)


def random_content_id() -> str:
    """A fresh content id (40 hex digits), for a channel nobody asked for before."""
    return secrets.token_hex(20)


def parse_playlist(text: str) -> tuple[float, list[str]]:
    """(target duration, segment URIs) of a media playlist."""
    target = 2.0
    uris = []
    for line in text.splitlines():
        if line.startswith("#EXT-X-TARGETDURATION:"):
            target = float(line.split(":", 1)[1])
        elif line and not line.startswith("#"):
            uris.append(line)
    return target, uris


def last_duration(text: str) -> float | None:
    """The ``#EXTINF`` duration of the last segment a media playlist lists, if any."""
    index = text.rfind("#EXTINF:")
    if index < 0:
        return None
    try:
        return float(text[index + len("#EXTINF:") :].split(",", 1)[0].split("\n", 1)[0])
    except ValueError:
        return None


def hlsjs_reload_interval(target: float, last: float | None, updated: bool) -> float:
    """Seconds hls.js waits before reloading a live media playlist it just loaded.

    hls.js 1.7 ``computeReloadInterval`` (``src/utils/level-helper.ts``): one target duration;
    when the reload brought a new last segment (``updated``: ``LevelDetails.reloaded`` in
    ``src/loader/level-details.ts`` compares ``endSN``) and the player is within four target
    durations of the live edge, the last segment's duration if that is shorter; when it brought
    none, half the target duration ("if the client reloads a Playlist file and finds that it has
    not changed then it MUST wait for a period of one-half the target duration", RFC 8216
    §6.3.4). A player that starts at the newest segment is always that near the edge.
    """
    if not updated:
        return target / 2
    if last is not None and 0 < last < target:
        return last
    return target


def hlsjs_next_reload(scheduled: float, interval: float, now: float) -> float:
    """When hls.js reloads next: ``interval`` after the previous reload's schedule, or ``now``
    when that is already past (``playlistLoaded`` in ``src/controller/base-playlist-controller.ts``:
    ``requestScheduled += reloadInterval``, or ``= now`` when it fell behind)."""
    return max(scheduled + interval, now)


def segment_sequence(uri: str) -> int | None:
    """The sequence number a segment URI ends with (``.../17.ts`` → 17), if it has one."""
    match = _SEQUENCE.search(uri.split("?", 1)[0])
    return int(match.group(1)) if match else None


@dataclass
class Answered:
    """One request a player made: what for, when it began, how long it took, the status."""

    kind: str
    at: float
    seconds: float
    status: int


@dataclass
class PlayerLog:
    """What one or many players saw.

    ``counts`` holds every answer as ``"<kind> <status>"`` (kinds: ``getstream``, ``playlist``,
    ``segment``); with ``keep_requests`` (the default) each request is kept too, for timings.
    """

    keep_requests: bool = True
    requests: list[Answered] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    errors: list[tuple[float, str]] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    """Connection failures by exception type."""
    sequences: list[int] = field(default_factory=list)
    """Sequence numbers of the segments fetched, in the order fetched."""
    gaps: list[tuple[int, int]] = field(default_factory=list)
    """(last sequence, next sequence) wherever a player skipped segments."""
    segments: int = 0
    segment_bytes: int = 0
    abandoned: int = 0
    """Segments a player left in the middle of (see :meth:`Player.segment`)."""
    first_segment: trio.Event = field(default_factory=trio.Event)

    def answered(self, kind: str, began: float, status: int) -> None:
        self.counts[f"{kind} {status}"] += 1
        if self.keep_requests:
            self.requests.append(Answered(kind, began, trio.current_time() - began, status))
        if status != (302 if kind == "getstream" else 200):
            self.errors.append((began, f"{kind} {status}"))

    def statuses(self, kind: str) -> list[int]:
        """Statuses of the ``kind`` requests, in order (needs ``keep_requests``)."""
        return [r.status for r in self.requests if r.kind == kind]

    def window(self, start: float, end: float) -> tuple[list[float], list[float], int]:
        """Segment and playlist latencies of requests begun in [start, end), and errors."""
        inside = [r for r in self.requests if start <= r.at < end]
        segments = [r.seconds for r in inside if r.kind == "segment" and r.status == 200]
        playlists = [r.seconds for r in inside if r.kind == "playlist"]
        return segments, playlists, sum(1 for at, _ in self.errors if start <= at < end)


@dataclass
class Player:
    """One player. ``pace``: seconds between playlist loads (None: the target duration).
    ``hlsjs_reload``: reload as hls.js does instead (:func:`hlsjs_reload_interval`; ``pace`` is
    then ignored).

    ``segments=False`` makes a player that only reloads the playlist. ``retry_after``: after a
    502/503, wait what its ``Retry-After`` says. ``leave_on_error``: leave on any other answer
    than 200 (and, with ``retry_after``, 502/503).
    """

    get: Getter
    log: PlayerLog
    pace: float | None = None
    segments: bool = True
    start_with: int = 1
    retry_after: bool = False
    leave_on_error: bool = False
    hlsjs_reload: bool = False

    async def watch(self, content_id: str, until: float = math.inf) -> None:
        """Open the channel of ``content_id`` and play it until ``until``."""
        url = await self.join(content_id)
        if url is not None:
            await self.play(url, until)

    async def join(self, content_id: str) -> str | None:
        """``/ace/getstream?id=…``: the playlist URL the proxy redirects to, or None."""
        began = trio.current_time()
        try:
            reply = await self.get(f"/ace/getstream?id={content_id}")
        except CONNECTION_ERRORS as exc:
            self._failed(exc)
            return None
        self.log.answered("getstream", began, reply.status)
        if reply.status != 302:
            return None
        return reply.headers["location"]

    async def play(self, url: str, until: float = math.inf) -> None:
        """Reload ``url`` and fetch its new segments while ``trio.current_time() < until``; the
        wait after the last reload is a whole one (the player returns at or after ``until``)."""
        listed: set[str] = set()
        last: int | None = None
        first = True
        newest: str | None = None
        scheduled = trio.current_time()
        try:
            while trio.current_time() < until:
                began = trio.current_time()
                reply = await self.get(url)
                self.log.answered("playlist", began, reply.status)
                target = 2.0
                interval = None
                if reply.status == 200:
                    text = reply.body.decode("utf-8", "replace")
                    target, uris = parse_playlist(text)
                    fresh = [u for u in uris if u not in listed]
                    if first:
                        fresh = fresh[-self.start_with :] if self.start_with > 0 else []
                    listed = set(uris)
                    first = False
                    updated = newest is None or (uris[-1] if uris else None) != newest
                    newest = uris[-1] if uris else None
                    if "#EXT-X-ENDLIST" in text:
                        updated = True  # hls.js: a playlist that is not live counts as updated
                    interval = hlsjs_reload_interval(target, last_duration(text), updated)
                    if self.segments:
                        for uri in fresh:
                            last = await self._fetch(urljoin(url, uri), last)
                elif self.retry_after and reply.status in (502, 503):
                    wait = float(reply.headers.get("retry-after", "2"))
                    await trio.sleep(wait)
                    continue
                elif self.leave_on_error:
                    return
                if self.hlsjs_reload:
                    # hls.js keeps its schedule; after an error it retries on its own timer
                    # (not modelled): the target duration.
                    scheduled = hlsjs_next_reload(
                        scheduled, target if interval is None else interval, trio.current_time()
                    )
                    await trio.sleep_until(scheduled)
                    continue
                pace = self.pace if self.pace is not None else target
                await trio.sleep_until(began + pace)
        except CONNECTION_ERRORS as exc:
            self._failed(exc)

    async def _fetch(self, url: str, last: int | None) -> int | None:
        began = trio.current_time()
        reply = await self.segment(url)
        if reply is None:
            return last
        self.log.answered("segment", began, reply.status)
        if reply.status != 200:
            return last
        self.log.segments += 1
        self.log.segment_bytes += len(reply.body)
        self.log.first_segment.set()
        sequence = segment_sequence(url)
        if sequence is None:
            return last
        self.log.sequences.append(sequence)
        if last is not None and sequence > last + 1:
            self.log.gaps.append((last, sequence))
        return sequence

    async def segment(self, url: str) -> Reply | None:
        """Fetch one segment. A subclass may leave in the middle (count it in
        ``log.abandoned``, after ``log.answered``) and return None."""
        return await self.get(url)

    def _failed(self, exc: Exception) -> None:
        self.log.errors.append((trio.current_time(), f"connection: {exc!r}"))
        self.log.failures[type(exc).__name__] += 1
