"""How often a channel may switch to a new upstream session: :class:`SwitchBudget`."""

from __future__ import annotations

from collections import deque

__all__ = ["BACKOFF_CAP", "SwitchBudget"]

BACKOFF_CAP = 8
"""The pause before a switch is at most this many times ``TRIOPROXY_FAILOVER_BACKOFF``."""


class SwitchBudget:
    """How many switches a channel may still make, and when the next one may start."""

    def __init__(self, max_switches: int, window: float, backoff: float) -> None:
        self.max_switches = max_switches
        self.window = window
        self.backoff = backoff
        self._switches: deque[float] = deque()
        self.total = 0
        """Switches made over the channel's life."""

    def _recent(self, now: float) -> int:
        while self._switches and self._switches[0] <= now - self.window:
            self._switches.popleft()
        return len(self._switches)

    def allowed(self, now: float) -> bool:
        return self._recent(now) < self.max_switches

    def delay(self, now: float) -> float:
        """Seconds before the next switch: none for the first in the window, then doubling."""
        recent = self._recent(now)
        if recent == 0 or self.backoff <= 0:
            return 0.0
        return float(min(BACKOFF_CAP * self.backoff, self.backoff * 2 ** (recent - 1)))

    def record(self, now: float) -> None:
        self._switches.append(now)
        self.total += 1
