"""Media as it arrives, gathered into few writes: what a channel read as MPEG-TS sends TS players.

On an engine's MPEG-TS (:mod:`.segmenting`) the players need not wait for whole segments: the
packets read are theirs at once. Each write costs a system call and, when a player's own task
does it, a wake-up — per player. So what arrives is gathered (:class:`Gather`) and published
at most every :data:`GATHER_SECONDS` or once :data:`GATHER_BYTES` are in, whichever comes
first: 1,000 players then cost a few writes each per second, whatever the engine's read sizes.
"""

from __future__ import annotations

import logging
import math

from ..hls.mpegts import Splicer
from ..hls.window import OverBudget, Segment, SegmentWindow
from .ts_player import TsChunk, not_mpegts

__all__ = ["GATHER_BYTES", "GATHER_SECONDS", "Copies", "Gather"]

log = logging.getLogger(__name__)

GATHER_SECONDS = 0.15
"""Media waits at most this long before it is published to the players."""
GATHER_BYTES = 32 * 1024
"""Media is published at once when this much is in."""


class Gather:
    """Media bytes gathered until they are due to be published."""

    __slots__ = ("_parts", "deadline", "size")

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self.size = 0
        self.deadline = math.inf
        """When what is gathered must be published (inf: nothing is)."""

    def __bool__(self) -> bool:
        return self.size > 0

    def add(self, data: bytes, now: float) -> bool:
        """Gather ``data``; True when what is gathered is due now (by its size)."""
        if not data:
            return False
        if not self._parts:
            self.deadline = now + GATHER_SECONDS
        self._parts.append(data)
        self.size += len(data)
        return self.size >= GATHER_BYTES

    def take(self) -> bytes:
        """Everything gathered, in order; nothing is gathered afterwards."""
        data = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
        self.clear()
        return data

    def clear(self) -> None:
        self._parts = []
        self.size = 0
        self.deadline = math.inf


class Copies:
    """Charges the TS output's copies (spliced segments, media as it arrived) to the channel's
    memory account, as its window's segments are."""

    __slots__ = ("_over_budget", "_window")

    def __init__(self, window: SegmentWindow) -> None:
        self._window = window
        self._over_budget = False

    def charge(self, size: int) -> int:
        """Bytes of a copy charged to the channel's account (0 when it does not fit)."""
        account = self._window.account
        if account is None:
            return 0
        self._window.make_room(size)
        try:
            account.add(size)
        except OverBudget:
            if not self._over_budget:
                self._over_budget = True
                log.warning(
                    "TS stream: a copy (%d bytes) does not fit in the memory budget "
                    "(TRIOPROXY_MEMORY_BUDGET); segments go out as the upstream made them, "
                    "media as it arrives uncharged",
                    size,
                )
            return 0
        self._over_budget = False
        return size

    def give_back(self, charged: int) -> None:
        if charged and self._window.account is not None:
            self._window.account.remove(charged)

    def spliced(self, segment: Segment, splicer: Splicer, now: float) -> TsChunk:
        """``segment`` as it goes out: spliced (a copy, charged, wherever the splicer changed a
        byte; as the upstream made it when that does not fit), or unsupported as it is."""
        reason = not_mpegts(segment)
        data, charged = segment.data, 0
        if reason is None:
            data = splicer.splice(data, discontinuity=segment.discontinuity)
            if data is not segment.data:
                charged = self.charge(len(data))
                if not charged and self._window.account is not None:
                    data = segment.data
        return TsChunk(segment.sequence, data, segment.duration, now, reason, charged)
