"""A channel's audience: its HLS players, its TS players and the requests waiting for it.

HLS players are told apart by a token and count while they made a request within
``HLS_CLIENT_IDLE_TIMEOUT`` (:class:`~trioproxy.channels.players.ClientTracker`); TS players
count exactly while their connection is open (:class:`~trioproxy.channels.ts.TsStream`); a
request waiting for the first segments counts too. :meth:`Audience.watch` stops the channel once
nobody of the three was there for ``PROXY_GRACE_PERIOD``.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from ..observability.metrics import PlayerKind
from .players import ClientTracker
from .ts import TsStream

__all__ = ["Audience"]


class Audience:
    def __init__(self, clients: ClientTracker, ts: TsStream) -> None:
        self.clients = clients
        self.ts = ts
        self.waiting = 0
        """Requests waiting for the first segments (each also counted as a player)."""
        self._waiters_left_at = trio.current_time()
        self._waiters_gone = trio.Event()

    def count(self, now: float) -> int:
        """Players of both kinds: HLS players seen lately and TS players connected."""
        return self.clients.count(now) + len(self.ts)

    def counts(self, now: float) -> dict[PlayerKind, int]:
        """Players present now, by kind (what ``trioproxy_players`` sums)."""
        return {"hls": self.clients.count(now), "ts": len(self.ts)}

    async def wait(self, ready: trio.Event) -> None:
        """Wait for ``ready``, counted as a player meanwhile."""
        self.waiting += 1
        if self.waiting == 1:
            self._waiters_gone = trio.Event()
        try:
            await ready.wait()
        finally:
            self.waiting -= 1
            if self.waiting == 0:
                self._waiters_left_at = trio.current_time()
                self._waiters_gone.set()

    async def watch(self, grace: float, stop: Callable[[str], None]) -> None:
        """Call ``stop("no players")`` once nobody watched for ``grace`` seconds. Waiters and
        connected TS players are players."""
        while True:
            if self.waiting:
                await self._waiters_gone.wait()
                continue
            if len(self.ts):
                await self.ts.wait_gone()
                continue
            idle_from = max(self.clients.idle_since(), self._waiters_left_at, self.ts.left_at)
            stop_at = idle_from + grace
            if trio.current_time() >= stop_at:
                stop("no players")
                return
            await trio.sleep_until(stop_at)
