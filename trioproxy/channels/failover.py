"""Failover: a channel outlives its engine session, within bounds.

When a channel's upstream session fails on the engine's side (it could not be opened, its
playlist kept failing or hanging, it stalled, the engine ended it, the engine left the
orchestrator's list), the channel asks an :class:`EnginePool` for a new engine and opens a new
session there, spliced into the same window after a discontinuity. This module holds the parts
that decide, as plain data:

- :class:`SessionRecord`: one engine session of a channel (engine, opened, ended, why), as the
  status page shows it and as the channel's end reason names it;
- :class:`SwitchBudget`: at most ``TRIOPROXY_FAILOVER_MAX_SWITCHES`` switches within
  ``TRIOPROXY_FAILOVER_WINDOW`` seconds, the first at once and each further one after a doubling
  pause (``TRIOPROXY_FAILOVER_BACKOFF``); past that the channel ends;
- :class:`EnginePool`: what a channel needs of its owner to switch (the registry implements it):
  a new engine with its own client, the engine load moved, the failed engine's breaker opened.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

from ..upstream.engine import Engine, EngineClient
from .upstreams import Upstream

__all__ = ["BACKOFF_CAP", "EnginePool", "SessionRecord", "SwitchBudget", "describe_attempts"]

BACKOFF_CAP = 8
"""The pause before a switch is at most this many times ``TRIOPROXY_FAILOVER_BACKOFF``."""
RECORDS_KEPT = 16
"""Sessions a channel remembers for its status (the newest)."""


class EnginePool(Protocol):
    """Engines for a channel's next session, as the registry hands them out."""

    def replace(self, failed: Upstream, *, same: bool) -> tuple[Upstream, EngineClient] | None:
        """The upstream (and the client reaching only it) for the next session after ``failed``
        failed: another engine with room when there is one, else (``same``) ``failed`` again,
        else None. Opens the failed engine's breaker; moves the engine load to the new one."""
        ...

    async def wait_unlisted(self, engine: Engine) -> str:
        """Return (why) once ``engine`` left the engine list; never for a static list."""
        ...


@dataclass(eq=False, slots=True)
class SessionRecord:
    """One engine session of a channel."""

    engine: str
    container_id: str | None
    started_at: float
    """When the channel asked for it."""
    opened_at: float | None = None
    ended_at: float | None = None
    reason: str | None = None
    playback_session_id: str | None = None

    def snapshot(self, *, detail: bool, now: float) -> dict[str, Any]:
        def ago(at: float | None) -> float | None:
            return None if at is None else round(now - at, 3)

        age = {"opened_seconds_ago": ago(self.opened_at), "ended_seconds_ago": ago(self.ended_at)}
        shown: dict[str, Any] = {
            "engine": self.engine,
            "container_id": self.container_id,
            "opened": self.opened_at is not None,
            **age,
            "ended": self.ended_at is not None,
            "reason": self.reason,
        }
        if detail:
            shown["playback_session_id"] = self.playback_session_id
        return shown


def describe_attempts(records: list[SessionRecord]) -> str:
    """Every session named with why it ended: ``1) http://a: reason; 2) ...``."""
    return "; ".join(
        f"{number}) {record.engine}: {record.reason or 'running'}"
        for number, record in enumerate(records, 1)
    )


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
