"""A channel's segment window: the buffered segments, in order. Pure data, no I/O, no Trio.

Its bytes are charged to the channel's account in the memory budget (:mod:`.budget`; the names
are re-exported here).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from .budget import MemoryAccount, MemoryBudget, OverBudget

__all__ = [
    "MAX_PACE",
    "KeyTag",
    "MemoryAccount",
    "MemoryBudget",
    "OverBudget",
    "Segment",
    "SegmentMeta",
    "SegmentWindow",
    "rounded_duration",
]


def rounded_duration(seconds: float) -> int:
    """A duration rounded to the nearest integer, halves up, as RFC 8216 §4.3.3.1 compares them."""
    return math.floor(seconds + 0.5)


@dataclass(frozen=True, slots=True)
class KeyTag:
    """An ``#EXT-X-KEY`` as we list it: the key at ``resource`` (one of the channel's proxied
    resources) or, for a key system we do not fetch (``skd://``...), the upstream ``uri`` as is."""

    method: str
    resource: int | None = None
    uri: str | None = None
    iv: str | None = None
    keyformat: str | None = None
    keyformatversions: str | None = None


@dataclass(frozen=True, slots=True)
class SegmentMeta:
    """What a segment carries besides its bytes: its kind of media and the tags that apply to it."""

    extension: str = "ts"
    """``ts``, ``m4s``, ``aac``...: names the media type in the segment URL."""
    init: int | None = None
    """The channel resource holding its ``#EXT-X-MAP`` initialization section."""
    keys: tuple[KeyTag, ...] = ()
    program_date_time: datetime | None = None
    date_time_listed: bool = False
    """The upstream listed ``#EXT-X-PROGRAM-DATE-TIME`` for this very segment."""


PLAIN = SegmentMeta()

MAX_PACE = 30
"""Seconds a segment lasts at most for our timers (:attr:`SegmentWindow.pace`)."""


@dataclass(frozen=True, slots=True)
class Segment:
    """One immutable media segment, as a player gets it."""

    sequence: int
    """Our media sequence number: unique within the channel, never reused."""
    data: bytes
    duration: float
    discontinuity: bool
    """An ``#EXT-X-DISCONTINUITY`` precedes this segment."""
    discontinuity_count: int
    """Discontinuities up to and including this segment, since the channel began."""
    upstream_sequence: int | None = None
    title: str = ""
    meta: SegmentMeta = PLAIN


class SegmentWindow:
    """The last ``max_segments`` segments of a channel, numbered from ``first_sequence``.

    A gap upstream (a segment that could not be had) is recorded with :meth:`mark_gap`; the next
    segment appended then carries the discontinuity flag, so a gap is never silent.

    With an ``account``, the bytes held are charged to it. A segment that does not fit drops the
    oldest segments first, down to the newest ``keep`` (the window players are served); when it
    still does not fit, :meth:`append` raises :class:`OverBudget` and holds what it held. What
    it holds beyond ``keep`` (its surplus) the budget may also take back for another channel
    (:meth:`MemoryBudget.reclaim`).
    """

    def __init__(
        self,
        max_segments: int,
        *,
        first_sequence: int = 0,
        account: MemoryAccount | None = None,
        keep: int = 1,
    ) -> None:
        if max_segments < 1:
            raise ValueError("max_segments must be ≥ 1")
        self._segments: deque[Segment] = deque(maxlen=max_segments)
        self._stamps: deque[int] = deque()
        """:meth:`MemoryBudget.stamp` of each segment held."""
        self.account = account
        if account is not None:
            account.window = self
        self.keep = max(1, keep)
        """Segments never dropped to make room in the budget."""
        self.dropped_for_budget = 0
        self._next_sequence = first_sequence
        self._discontinuities = 0
        self._gap_pending = False
        self._appended = False
        self._target_duration = 1
        self._longest = 1
        self.total_bytes = 0
        self.gaps = 0
        self.version = 0
        """Counts every change of what a playlist of this window lists (a segment in or out,
        the target duration raised): equal versions, equal playlists."""

    def __len__(self) -> int:
        return len(self._segments)

    def __iter__(self) -> Iterator[Segment]:
        return iter(self._segments)

    @property
    def target_duration(self) -> int:
        """Never decreases: ≥ every rounded duration this window has ever held (RFC 8216 §6.2.1)."""
        return self._target_duration

    @property
    def pace(self) -> int:
        """Seconds a segment lasts as our timers count them (a TS player's lag bound, its
        keep-alive, its send timeout): the longest segment duration this window has held,
        rounded, at least 1 and at most :data:`MAX_PACE`.

        Not :attr:`target_duration`: that one also takes what the upstream declared, and never
        comes down. An ``#EXT-X-TARGETDURATION:3600`` (a placeholder playlist, a broken
        packager) over 2 s segments would otherwise stretch those timers to hours; a segment
        that claims an hour is bounded the same way.
        """
        return self._longest

    @property
    def next_sequence(self) -> int:
        return self._next_sequence

    def raise_target_duration(self, seconds: float) -> None:
        if math.ceil(seconds) > self._target_duration:
            self._target_duration = math.ceil(seconds)
            self.version += 1

    def mark_gap(self) -> None:
        """Something between the last segment and the next one is missing."""
        if not self._gap_pending:
            self.gaps += 1
        self._gap_pending = True

    def append(
        self,
        data: bytes,
        duration: float,
        *,
        discontinuity: bool = False,
        upstream_sequence: int | None = None,
        title: str = "",
        meta: SegmentMeta = PLAIN,
    ) -> Segment:
        if not math.isfinite(duration) or duration < 0:
            raise ValueError(f"invalid segment duration {duration!r}")
        if len(self._segments) == self._segments.maxlen:
            self._drop_oldest()
        if self.account is not None:
            self.make_room(len(data))
            self.account.add(len(data), segment=True)
        flagged = discontinuity or (self._gap_pending and self._appended)
        if flagged:
            self._discontinuities += 1
        segment = Segment(
            sequence=self._next_sequence,
            data=data,
            duration=duration,
            discontinuity=flagged,
            discontinuity_count=self._discontinuities,
            upstream_sequence=upstream_sequence,
            title=title,
            meta=meta,
        )
        self._gap_pending = False
        self._appended = True
        self._next_sequence += 1
        self._segments.append(segment)
        self._stamps.append(self.account.stamp() if self.account is not None else 0)
        self.total_bytes += len(data)
        rounded = rounded_duration(duration)
        self._target_duration = max(self._target_duration, rounded)
        self._longest = min(MAX_PACE, max(self._longest, rounded))
        self.version += 1
        return segment

    def make_room(self, size: int) -> None:
        """Drop the oldest segments beyond the served window until ``size`` more bytes fit in
        the account, or none is left to drop."""
        if self.account is not None:
            while size > self.account.room and len(self._segments) > self.keep:
                self.drop_oldest_surplus()

    @property
    def surplus_bytes(self) -> int:
        """Bytes held beyond the newest ``keep`` segments."""
        surplus = len(self._segments) - self.keep
        if surplus <= 0:
            return 0
        return sum(len(self._segments[n].data) for n in range(surplus))

    def oldest_stamp(self) -> int:
        return self._stamps[0] if self._stamps else 0

    def drop_oldest_surplus(self) -> None:
        """Drop the oldest segment, if it is beyond the served window, to make room in the
        budget."""
        if len(self._segments) > self.keep:
            self._drop_oldest()
            self.dropped_for_budget += 1

    def _drop_oldest(self) -> None:
        self._stamps.popleft()
        size = len(self._segments.popleft().data)
        self.version += 1
        self.total_bytes -= size
        if self.account is not None:
            self.account.remove(size, segment=True)

    def release(self) -> None:
        """The channel's life is over: its segments are dropped and its account closed, so its
        bytes are neither held nor counted any more."""
        if self.account is not None:
            self.account.close(len(self._segments), self.total_bytes)
        self._segments.clear()
        self.total_bytes = 0
        self.version += 1

    def grow(self, max_segments: int) -> None:
        """Keep up to ``max_segments`` from now on (finished content is served whole)."""
        if self._segments.maxlen is not None and max_segments > self._segments.maxlen:
            self._segments = deque(self._segments, maxlen=max_segments)

    @property
    def max_segments(self) -> int:
        return self._segments.maxlen or 0

    def get(self, sequence: int) -> Segment | None:
        if not self._segments:
            return None
        index = sequence - self._segments[0].sequence
        if 0 <= index < len(self._segments):
            return self._segments[index]
        return None

    def latest(self, count: int) -> list[Segment]:
        """The newest ``count`` segments, oldest first."""
        if count <= 0:
            return []
        return list(self._segments)[-count:]
