"""Fetch planning: which upstream segments to fetch next, and when to reload. Pure functions.

The fetch loop (``trioproxy.channels.fetcher``) reloads an upstream media playlist again and
again; after each reload it asks :func:`plan_fetches` what is new, and :func:`reload_pause` how
long to wait before the next reload. Nothing here does I/O or knows Trio.

- **New segments** are those after the last one we queued. On the first load, a live playlist
  starts at its live edge (the newest ``initial_segments``); finished content (``#EXT-X-ENDLIST``
  on the first load) is taken from its start, at most ``vod_cap`` segments.
- **A gap**: the upstream dropped segments before we saw them (the first new sequence is past
  the next one we expected). The first new segment is then marked as a discontinuity.
- **A restart**: the media sequence went back (the upstream restarted). We start again at the
  live edge, with a discontinuity.
- **A missed discontinuity**: the upstream listed ``#EXT-X-DISCONTINUITY`` only on a segment we
  never saw; its discontinuity sequence number still moved on, so the next one we fetch gets it.
- **The reload pace** (RFC 8216 §6.3.4): the target duration after a reload that changed the
  playlist, half of it after one that did not, :data:`EMPTY_RELOAD_INTERVAL` while it lists no
  segments (there is no target duration to go by).
"""

from __future__ import annotations

from dataclasses import dataclass

from .playlist import UpstreamPlaylist, UpstreamSegment

__all__ = ["EMPTY_RELOAD_INTERVAL", "Fetch", "FetchPlan", "plan_fetches", "reload_pause"]

EMPTY_RELOAD_INTERVAL = 1.0
"""Seconds between reloads while the upstream lists no segments yet."""


@dataclass(frozen=True, slots=True)
class Fetch:
    """One upstream segment to fetch, in playlist order."""

    segment: UpstreamSegment
    discontinuity_before: bool
    """Something was lost before this segment (a gap, a restart, a missed discontinuity): the
    window must mark a discontinuity before it."""


@dataclass(frozen=True, slots=True)
class FetchPlan:
    """What one reload of the upstream playlist brought."""

    fetches: tuple[Fetch, ...]
    dropped: tuple[int, int] | None = None
    """Upstream sequences (first, last) dropped before we saw them."""
    restarted_at: int | None = None
    """The upstream's last sequence when its media sequence went back."""

    @property
    def last_sequence(self) -> int | None:
        return self.fetches[-1].segment.sequence if self.fetches else None

    @property
    def last_discontinuity(self) -> int | None:
        return self.fetches[-1].segment.discontinuity_number if self.fetches else None


def plan_fetches(
    playlist: UpstreamPlaylist,
    last_sequence: int | None,
    last_discontinuity: int | None,
    *,
    initial_segments: int,
    vod_cap: int,
) -> FetchPlan:
    """The segments of ``playlist`` to fetch, given the last one queued (None: nothing yet).

    ``last_discontinuity`` is the discontinuity sequence number of the last segment queued.
    """
    segments = playlist.segments
    if not segments:
        return FetchPlan(())
    live_edge = max(1, initial_segments)
    gap = False
    dropped: tuple[int, int] | None = None
    restarted_at: int | None = None
    if last_sequence is None:
        fresh = segments if playlist.endlist else segments[-live_edge:]
        fresh = fresh[:vod_cap]
    elif segments[-1].sequence < last_sequence:
        restarted_at = segments[-1].sequence
        fresh, gap = segments[-live_edge:], True
    else:
        fresh = tuple(s for s in segments if s.sequence > last_sequence)
        if fresh and fresh[0].sequence > last_sequence + 1:
            dropped = (last_sequence + 1, fresh[0].sequence - 1)
            gap = True
    fetches = []
    previous = last_discontinuity
    for index, segment in enumerate(fresh):
        missed = previous is not None and segment.discontinuity_number > previous
        missed = missed and not segment.discontinuity
        previous = segment.discontinuity_number
        fetches.append(Fetch(segment, (gap and index == 0) or missed))
    return FetchPlan(tuple(fetches), dropped, restarted_at)


def reload_pause(playlist: UpstreamPlaylist, previous_last: int | None) -> float:
    """Seconds from the start of this reload to the next one (RFC 8216 §6.3.4).

    ``previous_last`` is the last sequence the previous reload listed (None: none, or no reload).
    """
    if playlist.target_duration is None or not playlist.segments:
        return EMPTY_RELOAD_INTERVAL
    if playlist.last_sequence != previous_last:
        return playlist.target_duration
    return playlist.target_duration / 2
