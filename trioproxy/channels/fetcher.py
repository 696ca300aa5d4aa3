"""A channel's fetch loop: every upstream segment, in order, into the channel's window.

Three tasks in one nursery::

    poller        reloads the upstream playlist at the RFC 8216 §6.3.4 pace → jobs, in order
    dispatcher    starts up to TRIOPROXY_SEGMENT_CONCURRENCY downloads at once
    committer     appends finished downloads to the window in playlist order; a segment that
                  could not be had becomes a gap (a discontinuity), never a silent skip
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio

from ..errors import EngineError, ProxyError, UpstreamRefused
from ..hls.playlist import (
    PlaylistError,
    UpstreamPlaylist,
    UpstreamSegment,
    is_master_playlist,
    parse_media_playlist,
)
from ..hls.variants import Variant, VariantLimits, parse_master_playlist, select_variant
from ..hls.window import PLAIN, SegmentMeta
from ..retry import backoff
from ..upstream.fetching import fetch_segment

if TYPE_CHECKING:
    from .channel import Channel

__all__ = ["Fetcher"]

log = logging.getLogger(__name__)

PLAYLIST_TIMEOUT = 10.0
"""Seconds one playlist reload may take."""
SEGMENT_ATTEMPTS = 3
EMPTY_POLL_INTERVAL = 1.0
"""Reload pace while the engine lists no segments yet (it has no target duration to go by)."""
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
    """Fills one channel's window from its upstream; what it learned is read by the channel."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel
        self._config = channel.config
        self._window = channel.window
        self._resources = channel.resources
        self._engines = channel.engines
        self._name = channel.name
        self.variant: Variant | None = None
        """The variant followed, when the upstream answered a master playlist."""
        self.upstream_ended = False
        self.serve_whole = False
        """Finished content (``#EXT-X-ENDLIST`` from the start): the whole list is served."""
        self.independent_segments = False
        self.last_good_segment_at = channel.created_at
        self._segment_error = ""
        self._last_discontinuity: int | None = None

    async def run(self, playback_url: str) -> None:
        """Fetch until the upstream ends (or the channel's scope is cancelled)."""
        jobs_send, jobs_receive = trio.open_memory_channel[_Job](self._config.hls_max_segments)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._download_in_order, jobs_receive)
            await self._poll(playback_url, jobs_send)
        if self.upstream_ended:
            # Only now is every listed segment in the window: the playlist may say it ends.
            self._channel.endlist = True
            if len(self._window):
                self._channel.mark_ready()

    async def _poll(self, url: str, jobs: trio.MemorySendChannel[_Job]) -> None:
        """Reload the engine's playlist and queue every segment it lists that we have not seen."""
        last_sequence: int | None = None
        previous_last: int | None = None
        failing_since: float | None = None
        attempt = hops = 0
        with jobs:
            while True:
                began = trio.current_time()
                try:
                    with trio.fail_after(PLAYLIST_TIMEOUT):
                        text, final_url = await self._engines.get_text(url)
                    if is_master_playlist(text):
                        if hops >= MASTER_HOPS:
                            raise PlaylistError("master playlists nested too deep")
                        hops += 1
                        url = self._choose_variant(text, final_url)
                        continue
                    playlist = parse_media_playlist(text, final_url)
                except (EngineError, PlaylistError, trio.TooSlowError) as exc:
                    if isinstance(exc, UpstreamRefused):  # a setting, not bad luck: no retry
                        self._channel.fail(exc, exc.message)
                        return
                    failing_since = began if failing_since is None else failing_since
                    reason = _describe(exc)
                    if began - failing_since >= self._config.upstream_timeout:
                        self._channel.fail(
                            EngineError(f"engine playlist failing: {reason}"),
                            f"engine playlist failing: {reason}",
                        )
                        return
                    log.warning("channel %s: playlist reload failed (%s)", self._name, reason)
                    await trio.sleep(backoff(attempt))
                    attempt += 1
                    continue
                failing_since, attempt, hops = None, 0, 0
                if playlist.target_duration:
                    self._window.raise_target_duration(playlist.target_duration)
                self.independent_segments = playlist.independent_segments
                if last_sequence is None and playlist.endlist:
                    self.serve_whole = True
                    self._window.grow(min(len(playlist.segments), self._config.vod_max_segments))
                    self._resources.limit = max(
                        self._resources.limit, 2 * self._window.max_segments
                    )
                for job in self._new_jobs(playlist, last_sequence):
                    await jobs.send(job)
                    last_sequence = job.segment.sequence
                    self._last_discontinuity = job.segment.discontinuity_number
                if playlist.endlist:
                    self.upstream_ended = True
                    log.info("channel %s: upstream playlist ended", self._name)
                    return
                changed = playlist.last_sequence != previous_last
                previous_last = playlist.last_sequence
                if playlist.target_duration is None or not playlist.segments:
                    pause = EMPTY_POLL_INTERVAL
                else:
                    pause = playlist.target_duration if changed else playlist.target_duration / 2
                await trio.sleep_until(began + pause)

    def _new_jobs(self, playlist: UpstreamPlaylist, last: int | None) -> list[_Job]:
        """The segments of ``playlist`` after ``last``; a gap or a restart flags a discontinuity."""
        segments = playlist.segments
        if not segments:
            return []
        live_edge = max(1, self._config.hls_initial_segments)
        gap = False
        if last is None:
            fresh = segments[-live_edge:] if not playlist.endlist else segments
            fresh = fresh[: self._config.vod_max_segments]
        elif segments[-1].sequence < last:
            log.warning(
                "channel %s: upstream media sequence went back from %d to %d; restarted",
                self._name,
                last,
                segments[-1].sequence,
            )
            fresh, gap = segments[-live_edge:], True
        else:
            fresh = tuple(s for s in segments if s.sequence > last)
            if fresh and fresh[0].sequence > last + 1:
                log.warning(
                    "channel %s: upstream dropped segments %d..%d before we saw them",
                    self._name,
                    last + 1,
                    fresh[0].sequence - 1,
                )
                gap = True
        jobs = []
        previous = self._last_discontinuity
        for index, segment in enumerate(fresh):
            # A discontinuity the upstream listed only on a segment we never saw still counts.
            missed = previous is not None and segment.discontinuity_number > previous
            missed = missed and not segment.discontinuity
            previous = segment.discontinuity_number
            jobs.append(_Job(segment, (gap and index == 0) or missed))
        return jobs

    def _choose_variant(self, text: str, url: str) -> str:
        limits = VariantLimits(
            max_bandwidth=self._config.variant_max_bandwidth,
            max_height=self._config.variant_max_resolution,
        )
        variant = select_variant(parse_master_playlist(text, url), limits)
        if variant != self.variant:
            log.info(
                "channel %s: master playlist; following the variant of %d bit/s at %s",
                self._name,
                variant.bandwidth,
                variant.uri,
            )
        self.variant = variant
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
                            self._engines, self._resources, job.segment
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
                        self._channel.fail(exc, exc.message)
                        return
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
                        message = f"engine segments failing: {self._segment_error}"
                        self._channel.fail(EngineError(message), message)
                        return
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
                if len(self._window) >= max(1, self._config.hls_initial_segments):
                    self._channel.mark_ready()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ProxyError):
        return exc.message
    if isinstance(exc, trio.TooSlowError):
        return "timed out"
    return str(exc) or type(exc).__name__
