"""A channel's segment window: the buffered segments, in order. Pure data, no I/O, no Trio.

Also the byte accounting that bounds what every window (and every channel's resources) hold
together: one :class:`MemoryBudget`, one :class:`MemoryAccount` per channel.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

__all__ = [
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


class OverBudget(Exception):
    """Bytes that do not fit in the memory budget."""


class MemoryBudget:
    """A limit on the bytes many accounts hold together.

    Each account is charged ``max(reserve, held)``: its reserve is set aside when it opens (so an
    admitted channel can always hold that much), and what it holds beyond it comes out of what
    no account is charged for. The sum of charges never exceeds :attr:`limit`.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be ≥ 1")
        self.limit = limit
        self.charged = 0
        """The sum of every open account's charge."""
        self.held = 0
        """Bytes the open accounts actually hold."""
        self.accounts = 0
        self.segments_held = 0
        self.segment_bytes_held = 0

    @property
    def free(self) -> int:
        return self.limit - self.charged

    def segment_size(self, default: int) -> int:
        """The mean size of the segments held now, or ``default`` when none is."""
        if not self.segments_held:
            return default
        return -(-self.segment_bytes_held // self.segments_held)

    def open(self, reserve: int) -> MemoryAccount | None:
        """A new account with ``reserve`` set aside, or None when that does not fit."""
        if reserve > self.free:
            return None
        return MemoryAccount(self, reserve)


class MemoryAccount:
    """What one channel holds of a :class:`MemoryBudget`. Closing it gives everything back."""

    def __init__(self, budget: MemoryBudget, reserve: int) -> None:
        self._budget = budget
        self.reserve = max(0, reserve)
        self.held = 0
        self.closed = False
        budget.charged += self.reserve
        budget.accounts += 1

    @property
    def charge(self) -> int:
        return max(self.reserve, self.held)

    @property
    def room(self) -> int:
        """Bytes this account may still add: what is left of its reserve, and the budget's free."""
        if self.closed:
            return 0
        return self.charge - self.held + self._budget.free

    def add(self, size: int, *, segment: bool = False) -> None:
        """Hold ``size`` more bytes; :class:`OverBudget` when they do not fit."""
        if size > self.room:
            raise OverBudget(f"{size} bytes do not fit ({self.room} left)")
        self._set(self.held + size)
        if segment:
            self._budget.segments_held += 1
            self._budget.segment_bytes_held += size

    def remove(self, size: int, *, segment: bool = False) -> None:
        if self.closed:
            return
        self._set(self.held - size)
        if segment:
            self._budget.segments_held -= 1
            self._budget.segment_bytes_held -= size

    def close(self, segments: int = 0, segment_bytes: int = 0) -> None:
        """Give back everything: ``segments`` of ``segment_bytes`` among what it held."""
        if self.closed:
            return
        self._budget.charged -= self.charge
        self._budget.held -= self.held
        self._budget.accounts -= 1
        self._budget.segments_held -= segments
        self._budget.segment_bytes_held -= segment_bytes
        self.closed = True
        self.held = self.reserve = 0

    def _set(self, held: int) -> None:
        before = self.charge
        self._budget.held += held - self.held
        self.held = held
        self._budget.charged += self.charge - before


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
    still does not fit, :meth:`append` raises :class:`OverBudget` and holds what it held.
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
        self.account = account
        self.keep = max(1, keep)
        """Segments never dropped to make room in the budget."""
        self.dropped_for_budget = 0
        self._next_sequence = first_sequence
        self._discontinuities = 0
        self._gap_pending = False
        self._appended = False
        self._target_duration = 1
        self.total_bytes = 0
        self.gaps = 0

    def __len__(self) -> int:
        return len(self._segments)

    def __iter__(self) -> Iterator[Segment]:
        return iter(self._segments)

    @property
    def target_duration(self) -> int:
        """Never decreases: ≥ every rounded duration this window has ever held (RFC 8216 §6.2.1)."""
        return self._target_duration

    @property
    def next_sequence(self) -> int:
        return self._next_sequence

    def raise_target_duration(self, seconds: float) -> None:
        self._target_duration = max(self._target_duration, math.ceil(seconds))

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
            while len(data) > self.account.room and len(self._segments) > self.keep:
                self._drop_oldest()
                self.dropped_for_budget += 1
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
        self.total_bytes += len(data)
        self._target_duration = max(self._target_duration, rounded_duration(duration))
        return segment

    def _drop_oldest(self) -> None:
        size = len(self._segments.popleft().data)
        self.total_bytes -= size
        if self.account is not None:
            self.account.remove(size, segment=True)

    def release(self) -> None:
        """Close the account: the channel is gone, its bytes are no longer counted."""
        if self.account is not None:
            self.account.close(len(self._segments), self.total_bytes)

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
