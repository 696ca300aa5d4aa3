"""One reload of an upstream playlist, read and planned: what it means for the window.

Nothing on the event loop grows with the size of the upstream's playlist: a playlist text over
``TRIOPROXY_PLAYLIST_THREAD_BYTES`` is read, and its fetches planned, in a worker thread
(:func:`digest`), which hands back only what the window needs; the whole parsed playlist dies
there. The loop keeps running between the thread's turns at the GIL.

Who gets a thread: at most :data:`PARSE_THREADS` at once in the process, handed out in the
order asked for (a :class:`trio.CapacityLimiter`, FIFO), and at most one per fetch loop
(:class:`ParseSlot`). A thread cannot be stopped: a reload that gives up on its parse (its
deadline passed) leaves the thread to finish, and both its places stay taken until it does. So
one fetch loop's slow parse holds one place, never all: the others' parses go on beside it, and
its own next parse waits for it. Every wait (for a place, and for the parse) is inside the
reload's deadline, like the read of the playlist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import trio
import trio.lowlevel

from ..config import Config
from ..hls.plan import FetchPlan, plan_fetches, reload_pause
from ..hls.playlist import (
    UpstreamPlaylist,
    is_master_playlist,
    parse_media_playlist,
)
from ..hls.variants import Variant, VariantLimits, parse_master_playlist, select_variant

__all__ = ["PARSE_THREADS", "Digest", "ParseSlot", "digest", "read_playlist"]

PARSE_THREADS = 4
"""Worker threads reading large playlists at once, across every channel of the process."""
_THREADS: trio.lowlevel.RunVar[trio.CapacityLimiter] = trio.lowlevel.RunVar("parse_threads")


def _threads() -> trio.CapacityLimiter:
    """The process's (the Trio run's) limiter of parse threads."""
    try:
        return _THREADS.get()
    except LookupError:
        limiter = trio.CapacityLimiter(PARSE_THREADS)
        _THREADS.set(limiter)
        return limiter


class ParseSlot:
    """One fetch loop's way to the parse threads: one thread of its own at a time, and a place
    among the process's :data:`PARSE_THREADS`. Taken before a thread starts, given back once the
    thread has ended (a limiter for :func:`trio.to_thread.run_sync`)."""

    def __init__(self) -> None:
        self._own = trio.CapacityLimiter(1)
        self._shared: trio.CapacityLimiter | None = None

    async def acquire_on_behalf_of(self, borrower: object) -> None:
        await self._own.acquire_on_behalf_of(borrower)
        shared = _threads()
        try:
            await shared.acquire_on_behalf_of(borrower)
        except BaseException:
            self._own.release_on_behalf_of(borrower)
            raise
        self._shared = shared

    def release_on_behalf_of(self, borrower: object) -> None:
        shared, self._shared = self._shared, None
        try:
            if shared is not None:
                shared.release_on_behalf_of(borrower)
        finally:
            self._own.release_on_behalf_of(borrower)


@dataclass(frozen=True, slots=True)
class Digest:
    """What one reload of an upstream playlist means for the window: no more than it needs."""

    variant: Variant | None = None
    """A master playlist: the variant to follow instead (the other fields are unset)."""
    target_duration: float | None = None
    independent_segments: bool = False
    endlist: bool = False
    listed: int = 0
    """Segments the playlist lists."""
    known_bytes: int | None = None
    """The bytes of every listed segment, when byte ranges tell them all."""
    plan: FetchPlan = field(default_factory=lambda: FetchPlan(()))
    pause: float = 0.0
    """Seconds from the reload's start to the next (:func:`~trioproxy.hls.plan.reload_pause`)."""
    last_sequence: int | None = None


def digest(
    text: str,
    url: str,
    limits: VariantLimits,
    last_sequence: int | None,
    last_discontinuity: int | None,
    previous_last: int | None,
    *,
    initial_segments: int,
    vod_cap: int,
) -> Digest:
    """Read a playlist and plan its fetches. Pure: runs on the event loop or in a thread."""
    if is_master_playlist(text):
        return Digest(variant=select_variant(parse_master_playlist(text, url), limits))
    playlist: UpstreamPlaylist = parse_media_playlist(text, url)
    plan = plan_fetches(
        playlist,
        last_sequence,
        last_discontinuity,
        initial_segments=initial_segments,
        vod_cap=vod_cap,
    )
    ranges = [s.byterange.length for s in playlist.segments[:vod_cap] if s.byterange is not None]
    return Digest(
        target_duration=playlist.target_duration,
        independent_segments=playlist.independent_segments,
        endlist=playlist.endlist,
        listed=len(playlist.segments),
        known_bytes=sum(ranges) if len(ranges) == min(len(playlist.segments), vod_cap) else None,
        plan=plan,
        pause=reload_pause(playlist, previous_last),
        last_sequence=playlist.last_sequence,
    )


async def read_playlist(
    config: Config,
    text: str,
    url: str,
    last_sequence: int | None,
    last_discontinuity: int | None,
    previous_last: int | None,
    slot: ParseSlot,
) -> Digest:
    """:func:`digest` on the event loop, or in a worker thread for a large playlist (through
    the fetch loop's ``slot``). The caller's deadline bounds the wait for the thread too."""
    limits = VariantLimits(
        max_bandwidth=config.variant_max_bandwidth, max_height=config.variant_max_resolution
    )
    args = (text, url, limits, last_sequence, last_discontinuity, previous_last)

    def read() -> Digest:
        return digest(
            *args, initial_segments=config.hls_initial_segments, vod_cap=config.vod_max_segments
        )

    if len(text) <= config.playlist_thread_bytes:
        return read()
    # Cancellable: a cancelled reload leaves the thread to finish on its own and drop it. Trio
    # takes any object with a limiter's two methods; its annotation names only its own class.
    limiter = cast(trio.CapacityLimiter, slot)
    return await trio.to_thread.run_sync(read, abandon_on_cancel=True, limiter=limiter)
