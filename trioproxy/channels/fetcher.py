"""The fetch loop: every upstream segment, in order, into the channel's window.

Its place in the task tree is drawn once, in ``trioproxy.service``. It is three tasks in one
nursery: the *poller* reloads the upstream playlist at the pace :mod:`trioproxy.hls.plan` sets
and queues, in order, what that plan says is new; the *dispatcher* starts up to
``TRIOPROXY_SEGMENT_CONCURRENCY`` downloads at once; the *committer* appends finished downloads
to the window in playlist order, and a segment that could not be had becomes a gap (a
discontinuity), never a silent skip.

Progress goes into the channel's :class:`~trioproxy.channels.feed.Feed`; a failure (the playlist
or the segments failing for ``TRIOPROXY_UPSTREAM_TIMEOUT``) leaves as
:class:`~trioproxy.errors.EngineError`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import trio

from ..config import Config
from ..errors import EngineError, ProxyError, UpstreamRefused
from ..hls.plan import plan_fetches, reload_pause
from ..hls.playlist import PlaylistError, UpstreamSegment, is_master_playlist, parse_media_playlist
from ..hls.variants import VariantLimits, parse_master_playlist, select_variant
from ..hls.window import PLAIN, SegmentMeta
from ..retry import backoff
from ..upstream.engine import EngineClient
from ..upstream.fetching import fetch_segment
from .feed import Feed

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

    async def run(self, playback_url: str) -> None:
        """Fetch until the upstream ends (or the caller's scope is cancelled)."""
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
            log.info(
                "channel %s: ready after %.2f s", self._name, trio.current_time() - self.started_at
            )
            self._feed.ready.set()

    async def _poll(self, url: str, jobs: trio.MemorySendChannel[_Job]) -> bool:
        """Reload the playlist and queue every segment it lists that we have not seen.

        Returns True when the upstream playlist ended; raises ``EngineError`` when it failed
        for ``TRIOPROXY_UPSTREAM_TIMEOUT``.
        """
        last_sequence: int | None = None
        last_discontinuity: int | None = None
        previous_last: int | None = None
        failing_since: float | None = None
        attempt = hops = 0
        with jobs:
            while True:
                began = trio.current_time()
                try:
                    with trio.fail_after(PLAYLIST_TIMEOUT):
                        text, final_url = await self._client.get_text(url)
                    if is_master_playlist(text):
                        if hops >= MASTER_HOPS:
                            raise PlaylistError("master playlists nested too deep")
                        hops += 1
                        url = self._choose_variant(text, final_url)
                        continue
                    playlist = parse_media_playlist(text, final_url)
                except (EngineError, PlaylistError, trio.TooSlowError) as exc:
                    if isinstance(exc, UpstreamRefused):  # a setting, not bad luck: no retry
                        raise
                    failing_since = began if failing_since is None else failing_since
                    reason = _describe(exc)
                    if began - failing_since >= self._config.upstream_timeout:
                        raise EngineError(f"engine playlist failing: {reason}") from exc
                    log.warning("channel %s: playlist reload failed (%s)", self._name, reason)
                    await trio.sleep(backoff(attempt))
                    attempt += 1
                    continue
                failing_since, attempt, hops = None, 0, 0
                if playlist.target_duration:
                    self._window.raise_target_duration(playlist.target_duration)
                self._feed.independent_segments = playlist.independent_segments
                if last_sequence is None and playlist.endlist:
                    self._feed.serve_whole = True
                    self._window.grow(min(len(playlist.segments), self._config.vod_max_segments))
                    self._resources.limit = max(
                        self._resources.limit, 2 * self._window.max_segments
                    )
                plan = plan_fetches(
                    playlist,
                    last_sequence,
                    last_discontinuity,
                    initial_segments=self._config.hls_initial_segments,
                    vod_cap=self._config.vod_max_segments,
                )
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
                    await jobs.send(_Job(fetch.segment, fetch.discontinuity_before))
                    last_sequence = fetch.segment.sequence
                    last_discontinuity = fetch.segment.discontinuity_number
                if playlist.endlist:
                    log.info("channel %s: upstream playlist ended", self._name)
                    return True
                pause = reload_pause(playlist, previous_last)
                previous_last = playlist.last_sequence
                await trio.sleep_until(began + pause)

    def _choose_variant(self, text: str, url: str) -> str:
        limits = VariantLimits(
            max_bandwidth=self._config.variant_max_bandwidth,
            max_height=self._config.variant_max_resolution,
        )
        variant = select_variant(parse_master_playlist(text, url), limits)
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
                    await commit_send.send(job)

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
                    if isinstance(exc, UpstreamRefused):  # a setting, not bad luck: no retry
                        raise
                    if isinstance(exc, EngineError) and exc.upstream_status in (404, 410):
                        return  # the engine no longer has it: retrying cannot help
                    if attempt + 1 < SEGMENT_ATTEMPTS:
                        await trio.sleep(backoff(attempt))
        finally:
            limiter.release_on_behalf_of(job)
            job.done.set()

    async def _commit(self, jobs: trio.MemoryReceiveChannel[_Job]) -> None:
        with jobs:
            async for job in jobs:
                await job.done.wait()
                now = trio.current_time()
                if job.gap_before:
                    self._window.mark_gap()
                if job.data is None:
                    self._window.mark_gap()
                    stalled = now - self.last_good_segment_at >= self._config.upstream_timeout
                    if stalled and not job.segment.gap:
                        raise EngineError(f"engine segments failing: {self._segment_error}")
                    continue
                self.last_good_segment_at = now
                self._window.append(
                    job.data,
                    job.segment.duration,
                    discontinuity=job.segment.discontinuity,
                    upstream_sequence=job.segment.sequence,
                    title=job.segment.title,
                    meta=job.meta,
                )
                self._feed.on_append()
                if len(self._window) >= max(1, self._config.hls_initial_segments):
                    self._set_ready()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ProxyError):
        return exc.message
    if isinstance(exc, trio.TooSlowError):
        return "timed out"
    return str(exc) or type(exc).__name__
