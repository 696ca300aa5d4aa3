"""The byte accounting that bounds what every window (and every channel's resources) hold
together: one :class:`MemoryBudget`, one :class:`MemoryAccount` per channel. Pure, no I/O.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["MemoryAccount", "MemoryBudget", "OverBudget", "Surplus"]


class Surplus(Protocol):
    """What the budget may take back from a window: segments beyond the window it serves."""

    @property
    def surplus_bytes(self) -> int: ...

    def oldest_stamp(self) -> int:
        """The :meth:`MemoryBudget.stamp` of its oldest segment."""
        ...

    def drop_oldest_surplus(self) -> None: ...


class OverBudget(Exception):
    """Bytes that do not fit in the memory budget."""


class MemoryBudget:
    """A limit on the bytes many accounts hold together.

    Each account is charged ``max(reserve, held)``: its reserve is set aside when it opens (so an
    admitted channel can always hold that much), and what it holds beyond it comes out of what
    no account is charged for. The sum of charges never exceeds :attr:`limit`. What the windows
    hold beyond the window they serve (their surplus) can be taken back: :meth:`reclaim`.
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
        self.reclaimed = 0
        """Segments dropped by :meth:`reclaim`."""
        self.open_accounts: dict[MemoryAccount, None] = {}
        self._added = 0

    @property
    def free(self) -> int:
        return self.limit - self.charged

    def stamp(self) -> int:
        """A number for a segment just added: the lower, the earlier, across every window."""
        self._added += 1
        return self._added

    def reclaim(self, size: int) -> bool:
        """Make ``size`` bytes free, if need be by dropping segments the windows hold beyond the
        window they serve, the oldest first whichever window holds them. False, with nothing
        dropped, when even all of that would not free enough."""
        if size <= self.free:
            return True
        if self.free + sum(account.reclaimable for account in self.open_accounts) < size:
            return False
        while self.free < size:
            windows = [a.window for a in self.open_accounts if a.reclaimable and a.window]
            min(windows, key=lambda window: window.oldest_stamp()).drop_oldest_surplus()
            self.reclaimed += 1
        return True

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
        self.window: Surplus | None = None
        """The window whose segments it holds, if any: its surplus can be reclaimed."""
        budget.charged += self.reserve
        budget.accounts += 1
        budget.open_accounts[self] = None

    @property
    def charge(self) -> int:
        return max(self.reserve, self.held)

    @property
    def room(self) -> int:
        """Bytes this account may still add: what is left of its reserve, and the budget's free."""
        if self.closed:
            return 0
        return self.charge - self.held + self._budget.free

    @property
    def reclaimable(self) -> int:
        """Bytes dropping its window's surplus would give back to the budget."""
        if self.window is None or self.held <= self.reserve:
            return 0
        return min(self.window.surplus_bytes, self.held - self.reserve)

    def stamp(self) -> int:
        """:meth:`MemoryBudget.stamp`."""
        return self._budget.stamp()

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
        del self._budget.open_accounts[self]
        self._budget.segments_held -= segments
        self._budget.segment_bytes_held -= segment_bytes
        self.closed = True
        self.held = self.reserve = 0

    def _set(self, held: int) -> None:
        before = self.charge
        self._budget.held += held - self.held
        self.held = held
        self._budget.charged += self.charge - before
