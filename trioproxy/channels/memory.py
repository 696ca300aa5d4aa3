"""The memory budget across channels (``TRIOPROXY_MEMORY_BUDGET``): who may hold how many bytes.

Every channel's window, resources (init sections and keys) and TS stream (the spliced copies
it keeps for its TS players) are charged to one :class:`~trioproxy.hls.window.MemoryBudget`
through the channel's own account. What that means:

- **A new channel** sets aside a reserve when it is admitted: its served playlist window
  (``HLS_WINDOW_SIZE``) and the segment arriving next (so that a channel within its reserve
  never leaves a segment out), at the mean size of the segments held now
  (:data:`SEGMENT_ESTIMATE` while none is), at most a quarter of the budget. When the budget
  has not that much free, the other live channels give back their surplus — what their windows
  hold beyond the window they serve (up to ``HLS_MAX_SEGMENTS``) and beyond their own reserve —
  the oldest segments first, whichever channel holds them; finished content has none. One that
  still will not fit is refused up front, with nothing dropped: ``503`` + ``Retry-After``.
- **A live channel** may hold more than its reserve while the budget has room; under pressure it
  drops its oldest segments beyond the served window rather than grow, and a segment that still
  does not fit is left out (a gap, logged).
- **Finished content** (served whole) drops nothing: as soon as its size can be told (byte
  ranges listed, or its first segments in) and it will not fit, the channel fails with
  :class:`MemoryRefused`, which players see as ``503``.

Freed bytes are not always given back to the system: glibc's allocator keeps freed 1 MiB
segments in its heap (1000 of them: ~1 GB of RSS kept after their channel closed). So when a
channel that held at least :data:`TRIM_AFTER` bytes is gone, :func:`give_back` asks glibc to
return its free memory (``malloc_trim``, in a worker thread); elsewhere it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

import trio

from ..config import Config
from ..errors import EngineError, OverCapacity
from ..hls.window import MemoryAccount, MemoryBudget

__all__ = [
    "SEGMENT_ESTIMATE",
    "TRIM_AFTER",
    "MemoryAdmission",
    "MemoryRefused",
    "finished_fits",
    "give_back",
]

SEGMENT_ESTIMATE = 1024 * 1024
"""Bytes a segment is taken to have while no channel holds one."""
MAX_RESERVE_SHARE = 4
"""A reserve is at most this fraction (1/n) of the budget."""
RETRY_AFTER = 10.0
TRIM_AFTER = 32 * 1024 * 1024
"""Bytes a closed channel must have held for :func:`give_back` to be worth a call."""
SETTING = "TRIOPROXY_MEMORY_BUDGET"

log = logging.getLogger(__name__)


class MemoryRefused(EngineError):
    """Content that will not fit in the memory budget: its channel ends, players get ``503``."""

    status = 503
    code = "over_capacity"


def _mib(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MiB"


def finished_fits(account: MemoryAccount, held: int, expected: int) -> MemoryRefused | None:
    """Whether finished content of ``expected`` bytes in all fits, ``held`` of them held now;
    the error to end its channel with when it does not."""
    if expected <= held + account.room:
        return None
    return MemoryRefused(
        f"finished content of about {_mib(expected)} does not fit in {SETTING} "
        f"({_mib(held + account.room)} free)",
        retry_after=RETRY_AFTER,
    )


class MemoryAdmission:
    """The budget, and the reserve each new channel is admitted with."""

    def __init__(self, config: Config) -> None:
        self.budget = MemoryBudget(config.memory_budget)
        self._segments = min(config.hls_window_size + 1, config.hls_max_segments)
        self.refused: Counter[str] = Counter()

    def reserve(self) -> int:
        """Bytes a new channel sets aside: its served window and the next segment, at today's
        mean segment size."""
        estimate = self._segments * self.budget.segment_size(SEGMENT_ESTIMATE)
        return min(estimate, self.budget.limit // MAX_RESERVE_SHARE)

    def admit(self) -> MemoryAccount:
        """An account for a new channel, its reserve made free from other windows' surplus if
        need be; :class:`OverCapacity` when it does not fit even so."""
        reserve = self.reserve()
        reclaimed = self.budget.reclaimed
        account = self.budget.open(reserve) if self.budget.reclaim(reserve) else None
        if self.budget.reclaimed > reclaimed:
            log.info(
                "memory budget: %d segments beyond served windows dropped for a new channel",
                self.budget.reclaimed - reclaimed,
            )
        if account is None:
            self.refused["channels"] += 1
            raise OverCapacity(
                f"a new channel needs {_mib(reserve)} and the memory budget has "
                f"{_mib(max(0, self.budget.free))} free ({SETTING}={_mib(self.budget.limit)})",
                retry_after=RETRY_AFTER,
            )
        return account

    def snapshot(self) -> dict[str, Any]:
        budget = self.budget
        return {
            "budget_bytes": budget.limit,
            "charged_bytes": budget.charged,
            "held_bytes": budget.held,
            "free_bytes": budget.free,
            "accounts": budget.accounts,
            "new_channel_reserve_bytes": self.reserve(),
            "reclaimed_segments": budget.reclaimed,
            "refused": dict(self.refused),
        }


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return trim


async def give_back() -> None:
    """Return the allocator's free memory to the system, where glibc allows (in a thread:
    ctypes lets go of the GIL, and a large heap takes a while)."""
    trim = _malloc_trim()
    if trim is not None:
        await trio.to_thread.run_sync(trim, 0)
