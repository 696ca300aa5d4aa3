"""An engine session's MPEG-TS, read over one connection and cut into the channel's segments.

Its place in the task tree is drawn once, in ``trioproxy.service``: in an upstream session, in
the place of the HLS fetch loop. :meth:`SegmentingReader.run` opens the session's
``playback_url`` once and feeds what arrives, a piece at a time
(:data:`~trioproxy.upstream.streams.READ_BYTES` at most), to the channel's
:class:`~trioproxy.hls.segmenter.Segmenter`; each segment it cuts is appended to the window with
its duration and discontinuity, as the fetch loop appends an engine's segments: the memory
budget, readiness after ``HLS_INITIAL_SEGMENTS``, the TS players told. A ``playback_url`` that
answers a playlist instead (by its name, its content type, or its first bytes, ``#EXTM3U``) is
read as HLS, by the fetch loop, and said once.

The segmenter is the channel's (:attr:`Feed.segmenter`): a later session is spliced in with
:meth:`~trioproxy.hls.segmenter.Segmenter.new_session`, its first segment a discontinuity.

Bounds, each failing the session (as :class:`~trioproxy.errors.EngineError` or one of its kinds):

- media that stops: media arriving moves :attr:`Feed.advanced_at`, so the session's health check
  (``health.py``) fails it as stalled after the stall settings' limit without media (before
  any: ``TRIOPROXY_STALL_TIMEOUT``, as an engine may prebuffer long), blamed on the content
  or the engine by one ``stat_url`` read, as an HLS session that stalls;
- media that cannot be cut: a segment in progress larger than ``TRIOPROXY_MAX_SEGMENT_BYTES``, or
  no segment for ``TRIOPROXY_STALL_TIMEOUT`` while media arrives;
- the connection breaking, or the engine ending a live stream.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

from ..config import Config
from ..errors import ContentUnavailable, EngineError
from ..hls.segmenter import Cut, Segmenter
from ..hls.window import OverBudget
from ..observability.metrics import CHANNEL_READY, SEGMENTS_FETCHED
from ..upstream.engine import EngineClient, MediaStream, Session
from .feed import Feed

__all__ = ["SegmentingReader", "names_playlist"]

log = logging.getLogger(__name__)

PLAYLIST_SUFFIXES = (".m3u8", ".m3u")
PLAYLIST_START = b"#EXTM3U"
SNIFF_BYTES = 64
"""Bytes looked at (at most) to tell a playlist from MPEG-TS."""


def names_playlist(url: str) -> bool:
    """The URL's path names a playlist (``.m3u8``): no need to look at what it answers."""
    path = url.split("?", 1)[0].split("#", 1)[0].lower()
    return path.endswith(PLAYLIST_SUFFIXES)


def _is_playlist(start: bytes) -> bool:
    return start.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(PLAYLIST_START)


class SegmentingReader:
    """Fills a channel's feed from one engine session's MPEG-TS playback."""

    def __init__(self, name: str, config: Config, client: EngineClient, feed: Feed) -> None:
        self._name = name
        self._config = config
        self._client = client
        self._feed = feed
        self._window = feed.window
        self.started_at = trio.current_time()
        self._cut_at = self.started_at
        """When the last segment was cut (or reading began)."""
        self._over_budget = False
        self._start = b""
        """The first bytes, until they tell MPEG-TS from a playlist."""
        self._started = False

    async def run(self, session: Session, hls: Callable[[str], Awaitable[None]]) -> None:
        """Read ``session`` until cancelled or failed; a playlist goes to ``hls``."""
        url = session.playback_url
        if names_playlist(url):
            await self._as_hls(url, "its name", hls)
            return
        async with self._client.open_stream(url) as stream:
            if "mpegurl" in stream.content_type:
                playlist = "its content type"
            else:
                playlist = await self._read(stream, session)
        if playlist:
            await self._as_hls(stream.url, playlist, hls)

    async def _as_hls(self, url: str, why: str, hls: Callable[[str], Awaitable[None]]) -> None:
        log.info(
            "channel %s: the engine's playback URL is an HLS playlist (by %s), not MPEG-TS; "
            "read as HLS",
            self._name,
            why,
        )
        self._feed.on_live(None)
        await hls(url)

    def _prepare_segmenter(self) -> None:
        segmenter = self._feed.segmenter
        if segmenter is None:
            segmenter = self._feed.segmenter = Segmenter(self._config.segment_target)
        elif segmenter.media_seen:
            segmenter.new_session()
        self._window.raise_target_duration(segmenter.target_duration)
        self._feed.target_duration = float(segmenter.target_duration)
        self._feed.on_live(segmenter)

    async def _read(self, stream: MediaStream, session: Session) -> str:
        """Feed the stream to the segmenter until it ends; ``"its first bytes"`` when they
        are a playlist's (nothing read then), else ``""``."""
        if await stream.read(self._take):
            return "its first bytes"
        segmenter = self._feed.segmenter if self._started else None
        if session.is_live or segmenter is None:
            raise EngineError("engine ended the MPEG-TS stream of a live session")
        self._feed.on_packets(b"")  # what TS players were not sent yet, at once
        last = segmenter.end()
        if last is not None:
            self._append(last, trio.current_time())
        log.info("channel %s: upstream stream ended", self._name)
        self._feed.ended.set()
        if len(self._window):
            self._set_ready()
        return ""

    def _take(self, chunk: bytes) -> bool:
        """One piece of the stream; True (stop) when it begins as a playlist."""
        if not self._started:
            self._start += chunk
            if len(self._start) < SNIFF_BYTES and not self._start.strip():
                return False
            if _is_playlist(self._start[:SNIFF_BYTES]):
                return True
            self._started = True
            self._prepare_segmenter()
            self._cut_at = trio.current_time()  # the engine's prebuffering is over
            chunk, self._start = self._start, b""
        segmenter = self._feed.segmenter
        assert segmenter is not None
        fed = segmenter.feed(chunk)
        now = trio.current_time()
        if fed.packets:
            self._feed.advanced_at = now
            self._feed.on_packets(fed.packets)
        for cut in fed.cuts:
            self._append(cut, now)
        limit = self._config.max_segment_bytes
        if len(segmenter.head) > limit:
            raise ContentUnavailable(
                f"engine stream: no segment boundary in {limit} bytes (TRIOPROXY_MAX_SEGMENT_BYTES)"
            )
        if fed.packets and now - self._cut_at >= self._config.stall_timeout:
            raise ContentUnavailable(
                f"engine stream: media arrives, but no segment could be cut from it in "
                f"{self._config.stall_timeout:g} s (TRIOPROXY_STALL_TIMEOUT)"
            )
        return False

    def _append(self, cut: Cut, now: float) -> None:
        self._cut_at = now
        try:
            self._window.append(cut.data, cut.duration, discontinuity=cut.discontinuity)
        except OverBudget:
            self._window.mark_gap()
            if not self._over_budget:
                self._over_budget = True
                log.warning(
                    "channel %s: a segment (%d bytes) left out: the memory budget is full "
                    "(TRIOPROXY_MEMORY_BUDGET)",
                    self._name,
                    len(cut.data),
                )
            return
        if self._over_budget:
            self._over_budget = False
            log.info("channel %s: segments fit in the memory budget again", self._name)
        SEGMENTS_FETCHED.inc()
        self._feed.on_append()
        if len(self._window) >= max(1, self._config.hls_initial_segments):
            self._set_ready()

    def _set_ready(self) -> None:
        if not self._feed.ready.is_set():
            waited = trio.current_time() - self.started_at
            log.info("channel %s: ready after %.2f s", self._name, waited)
            CHANNEL_READY.observe(waited)
            self._feed.ready.set()
