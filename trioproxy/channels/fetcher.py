"""The fetch loop: every upstream segment, in order, into the channel's window.

Its place in the task tree is drawn once, in ``trioproxy.service``. It is three tasks in one
nursery: the *poller* reloads the upstream playlist at the pace :mod:`trioproxy.hls.plan` sets
and queues, in order, what that plan says is new; the *dispatcher* starts up to
``TRIOPROXY_SEGMENT_CONCURRENCY`` downloads at once; the *committer* appends finished downloads
to the window in playlist order, and a segment that could not be had becomes a gap (a
discontinuity), never a silent skip.

Progress goes into the channel's :class:`~trioproxy.channels.feed.Feed`; a failure (the playlist
or the segments failing for ``TRIOPROXY_FAILOVER_PLAYLIST_TARGETS`` target durations, at
most ``TRIOPROXY_UPSTREAM_TIMEOUT``, finished content too big for the
memory budget) leaves as :class:`~trioproxy.errors.EngineError`.

Each reload is read, and its fetches planned, by :func:`~trioproxy.channels.digest.read_playlist`
(in a worker thread for a large playlist), within the reload's deadline.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import httpx
import trio
import trio.lowlevel

from ..config import Config
from ..errors import EngineError, ProxyError, UpstreamRefused, UpstreamUnusable
from ..hls.playlist import (
    PlaylistError,
    UpstreamSegment,
)
from ..hls.variants import Variant
from ..hls.window import PLAIN, OverBudget, SegmentMeta
from ..observability.metrics import CHANNEL_READY, SEGMENTS_FETCHED
from ..retry import backoff
from ..upstream.engine import EngineClient
from ..upstream.fetching import fetch_segment
from ..upstream.liveness import refused_in_chain
from .digest import Digest, ParseSlot, read_playlist
from .feed import Feed
from .memory import RETRY_AFTER, MemoryRefused, finished_fits

__all__ = ["Fetcher"]

log = logging.getLogger(__name__)

PLAYLIST_TIMEOUT = 10.0
"""Seconds one playlist reload may take."""
SEGMENT_ATTEMPTS = 3
MASTER_HOPS = 3
"""Master playlists followed in a row before the upstream counts as broken."""


@dataclass(eq=False, slots=True)
class _Job:
    """One upstream segment on its way into the window."""

    segment: UpstreamSegment
    gap_before: bool
    """Upstream segments before this one were never seen: a discontinuity we must add."""
    data: bytes | None = None
    meta: SegmentMeta = PLAIN
    done: trio.Event = field(default_factory=trio.Event)


class Fetcher:
    """Fills a channel's feed from one upstream playlist URL."""

    def __init__(self, name: str, config: Config, client: EngineClient, feed: Feed) -> None:
        self._name = name
        self._config = config
        self._client = client
        self._feed = feed
        self._window = feed.window
        self._resources = feed.resources
        self.started_at = trio.current_time()
        self.last_good_segment_at = self.started_at
        self._segment_error = ""
        self._planned = 0
        """Segments of finished content to be held in all."""
        self._over_budget = False
        self._parse_slot = ParseSlot()
        self._origin: tuple[str, str, int | None] | None = None
        """Scheme, host and port of the playlist: where a refused segment means it is gone."""

    async def run(self, playback_url: str) -> None:
        """Fetch until the upstream ends (or the caller's scope is cancelled)."""
        self._origin = _origin(playback_url)
        jobs_send, jobs_receive = trio.open_memory_channel[_Job](self._config.hls_max_segments)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._download_in_order, jobs_receive)
            ended = await self._poll(playback_url, jobs_send)
        if ended:
            # Only now is every listed segment in the window: the playlist may say it ends.
            self._feed.ended.set()
            if len(self._window):
                self._set_ready()

    def _set_ready(self) -> None:
        if not self._feed.ready.is_set():
            waited = trio.current_time() - self.started_at
            log.info("channel %s: ready after %.2f s", self._name, waited)
            CHANNEL_READY.observe(waited)
            self._feed.ready.set()

    async def _poll(self, url: str, jobs: trio.MemorySendChannel[_Job]) -> bool:
        """Reload the playlist and queue every segment it lists that we have not seen.

        Returns True when the upstream playlist ended; raises ``EngineError`` when it failed
        (or hung) from the start of its first failing reload for :meth:`_limit`.
        """
        last_sequence: int | None = None
        last_discontinuity: int | None = None
        previous_last: int | None = None
        failing_since: float | None = None
        attempt = hops = 0
        with jobs:
            while True:
                began = trio.current_time()
                timeout_at = began + PLAYLIST_TIMEOUT
                give_up_at = (began if failing_since is None else failing_since) + self._limit()
                if began < give_up_at:  # a reload hanging across the deadline ends at it
                    timeout_at = min(timeout_at, give_up_at)
                try:
                    with trio.fail_at(timeout_at):  # the read, and the parse in its thread
                        text, final_url = await self._client.get_text(url)
                        read = await read_playlist(
                            self._config,
                            text,
                            final_url,
                            last_sequence,
                            last_discontinuity,
                            previous_last,
                            self._parse_slot,
                        )
                    del text
                    if read.variant is not None:
                        if hops >= MASTER_HOPS:
                            raise PlaylistError("master playlists nested too deep")
                        hops += 1
                        url = self._follow(read.variant)
                        continue
                except (EngineError, PlaylistError, trio.TooSlowError) as exc:
                    if isinstance(exc, UpstreamRefused | UpstreamUnusable):
                        raise  # a setting or a bound, not bad luck: no retry
                    failing_since = began if failing_since is None else failing_since
                    reason = _describe(exc)
                    give_up_at = failing_since + self._limit()
                    # A refused connection is an answer, not bad luck: nothing listens at the
                    # engine any more (a stale pooled connection fails otherwise, and is retried
                    # by the client), so the session fails at once, before its deadline.
                    if _refused(exc) or trio.current_time() >= give_up_at:
                        raise EngineError(f"engine playlist failing: {reason}") from exc
                    log.warning("channel %s: playlist reload failed (%s)", self._name, reason)
                    # The last retry starts at the deadline; one still failing then ends it.
                    pause = _retry_pause(exc, attempt)
                    await trio.sleep_until(min(trio.current_time() + pause, give_up_at))
                    attempt += 1
                    continue
                failing_since, attempt, hops = None, 0, 0
                if read.target_duration:
                    self._window.raise_target_duration(read.target_duration)
                    self._feed.target_duration = read.target_duration
                self._feed.independent_segments = read.independent_segments
                if last_sequence is None and read.endlist:
                    self._serve_whole(read)
                plan = read.plan
                if plan.restarted_at is not None:
                    log.warning(
                        "channel %s: upstream media sequence went back from %d to %d; restarted",
                        self._name,
                        last_sequence,
                        plan.restarted_at,
                    )
                if plan.dropped is not None:
                    log.warning(
                        "channel %s: upstream dropped segments %d..%d before we saw them",
                        self._name,
                        *plan.dropped,
                    )
                for fetch in plan.fetches:
                    if not await _hand_on(jobs, _Job(fetch.segment, fetch.discontinuity_before)):
                        return False
                    last_sequence = fetch.segment.sequence
                    last_discontinuity = fetch.segment.discontinuity_number
                if read.endlist:
                    log.info("channel %s: upstream playlist ended", self._name)
                    return True
                previous_last = read.last_sequence
                await trio.sleep_until(began + read.pause)

    def _limit(self) -> float:
        """Seconds the playlist (or the segments) may keep failing before the session fails."""
        config = self._config
        return self._feed.limit(config.failover_playlist_targets, config.upstream_timeout)

    def _serve_whole(self, read: Digest) -> None:
        """Finished content from the start: keep all of it, if it fits in the memory budget."""
        self._feed.serve_whole = True
        self._planned = min(read.listed, self._config.vod_max_segments)
        self._window.grow(self._planned)
        self._window.keep = self._window.max_segments  # served whole: nothing may be dropped
        self._resources.limit = max(self._resources.limit, 2 * self._window.max_segments)
        account = self._window.account
        if account is not None and read.known_bytes is not None:
            refused = finished_fits(account, self._window.total_bytes, read.known_bytes)
            if refused is not None:
                raise refused

    def _follow(self, variant: Variant) -> str:
        if variant != self._feed.variant:
            log.info(
                "channel %s: master playlist; following the variant of %d bit/s at %s",
                self._name,
                variant.bandwidth,
                variant.uri,
            )
        self._feed.variant = variant
        return variant.uri

    async def _download_in_order(self, jobs: trio.MemoryReceiveChannel[_Job]) -> None:
        limiter = trio.CapacityLimiter(self._config.segment_concurrency)
        commit_send, commit_receive = trio.open_memory_channel[_Job](self._config.hls_max_segments)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._commit, commit_receive)
            with jobs, commit_send:
                async for job in jobs:
                    await limiter.acquire_on_behalf_of(job)
                    nursery.start_soon(self._download, job, limiter)
                    if not await _hand_on(commit_send, job):
                        return

    async def _download(self, job: _Job, limiter: trio.CapacityLimiter) -> None:
        try:
            if job.segment.gap:
                return  # the upstream has no media for it (#EXT-X-GAP)
            timeout = max(PLAYLIST_TIMEOUT, 3 * job.segment.duration)
            for attempt in range(SEGMENT_ATTEMPTS):
                try:
                    with trio.fail_after(timeout):
                        job.data, job.meta = await fetch_segment(
                            self._client, self._resources, job.segment
                        )
                    return
                except (EngineError, trio.TooSlowError) as exc:
                    self._segment_error = _describe(exc)
                    log.warning(
                        "channel %s: segment %d download failed (%s)",
                        self._name,
                        job.segment.sequence,
                        self._segment_error,
                    )
                    self._feed.last_error = self._segment_error
                    if isinstance(exc, UpstreamRefused):  # a setting, not bad luck: no retry
                        raise
                    if _refused(exc) and _origin(job.segment.uri) == self._origin:
                        # Nothing listens where the playlist comes from: the session is over.
                        raise EngineError(f"engine unreachable: {self._segment_error}") from exc
                    if isinstance(exc, UpstreamUnusable):
                        return  # over a bound: the same again would be; a gap, not a retry
                    if isinstance(exc, EngineError) and exc.upstream_status in (404, 410):
                        return  # the engine no longer has it: retrying cannot help
                    if attempt + 1 < SEGMENT_ATTEMPTS:
                        await trio.sleep(_retry_pause(exc, attempt))
        finally:
            limiter.release_on_behalf_of(job)
            job.done.set()

    async def _commit(self, jobs: trio.MemoryReceiveChannel[_Job]) -> None:
        with jobs:
            async for job in jobs:
                await job.done.wait()
                now = trio.current_time()
                self._feed.advanced_at = now
                if job.gap_before:
                    self._window.mark_gap()
                if job.data is None:
                    self._window.mark_gap()
                    stalled = now - self.last_good_segment_at >= self._limit()
                    if stalled and not job.segment.gap:
                        raise EngineError(f"engine segments failing: {self._segment_error}")
                    continue
                self.last_good_segment_at = now
                try:
                    self._window.append(
                        job.data,
                        job.segment.duration,
                        discontinuity=job.segment.discontinuity,
                        upstream_sequence=job.segment.sequence,
                        title=job.segment.title,
                        meta=job.meta,
                    )
                except OverBudget:
                    self._left_out(job)
                    continue
                SEGMENTS_FETCHED.inc()
                self._feed.on_append()
                if self._over_budget:
                    self._over_budget = False
                    log.info("channel %s: segments fit in the memory budget again", self._name)
                if self._feed.serve_whole:
                    self._check_finished_fits()
                if len(self._window) >= max(1, self._config.hls_initial_segments):
                    self._set_ready()

    def _left_out(self, job: _Job) -> None:
        """A segment that does not fit in the memory budget, with the served window kept."""
        if self._feed.serve_whole:
            refused = MemoryRefused(
                f"finished content does not fit in TRIOPROXY_MEMORY_BUDGET: {len(self._window)} "
                f"of its {self._planned} segments are held ({self._window.total_bytes} bytes)",
                retry_after=RETRY_AFTER,
            )
            log.warning("channel %s: %s", self._name, refused.message)
            raise refused
        self._window.mark_gap()
        if not self._over_budget:
            self._over_budget = True
            log.warning(
                "channel %s: segment %d (%d bytes) left out: the memory budget is full "
                "(TRIOPROXY_MEMORY_BUDGET)",
                self._name,
                job.segment.sequence,
                len(job.data or b""),
            )

    def _check_finished_fits(self) -> None:
        """Finished content: once segments are in, its whole size can be told; refuse it early."""
        account = self._window.account
        held = self._window.total_bytes
        if account is None or not len(self._window) or self._planned <= len(self._window):
            return
        expected = held * self._planned // len(self._window)
        refused = finished_fits(account, held, expected)
        if refused is not None:
            log.warning("channel %s: %s", self._name, refused.message)
            raise refused


async def _hand_on(send: trio.MemorySendChannel[_Job], job: _Job) -> bool:
    """Pass ``job`` to the next step; False when that step has ended. It ends only by raising
    (the commit step for finished content over the memory budget, a failing download): its
    own error, raised in the same nursery, says why, so this one stands down quietly."""
    try:
        await send.send(job)
    except trio.BrokenResourceError:
        await trio.lowlevel.checkpoint()  # the nursery's cancellation, if it came first
        return False
    return True


def _refused(exc: BaseException) -> bool:
    """The engine's host refused the connection at every address: nothing listens there any
    more. Other connect errors (a name that does not resolve, TLS, no route, no free
    descriptor) are bad luck, retried under the deadlines like any other failure."""
    return isinstance(exc, EngineError) and refused_in_chain(exc)


def _origin(url: str) -> tuple[str, str, int | None]:
    parsed = httpx.URL(url)
    return parsed.scheme, parsed.host, parsed.port


def _retry_pause(exc: BaseException, attempt: int) -> float:
    """Seconds before retry ``attempt`` (from 0) of a failed request: a backoff, but none after
    a first failure that broke the connection mid-request (reset, closed mid-answer): the
    engine's process may have gone away, and then the retry is refused at once."""
    lost = isinstance(exc, EngineError) and isinstance(
        exc.__cause__, httpx.ReadError | httpx.WriteError | httpx.RemoteProtocolError
    )
    return 0.0 if attempt == 0 and lost else backoff(attempt)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ProxyError):
        return exc.message
    if isinstance(exc, trio.TooSlowError):
        return "timed out"
    return str(exc) or type(exc).__name__
