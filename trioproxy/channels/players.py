"""Who is watching a channel: players told apart by a token, not by IP. Pure data, no Trio."""

from __future__ import annotations

__all__ = ["ClientTracker"]


class ClientTracker:
    """Players of one channel and when each was last seen (times are ``trio.current_time()``).

    A player that made no request for ``idle_timeout`` seconds is gone. Each may carry the
    address it comes from (see :mod:`.per_address`), counted by :meth:`from_address`.
    """

    def __init__(self, idle_timeout: float) -> None:
        self.idle_timeout = idle_timeout
        self._last_seen: dict[str, float] = {}
        self._address: dict[str, str] = {}
        self.last_request = float("-inf")

    def touch(self, client: str, now: float, address: str | None = None) -> None:
        # Re-insert so the dict stays ordered by last request: pruning stops at the first live one.
        self._last_seen.pop(client, None)
        self._last_seen[client] = now
        if address is not None:
            self._address[client] = address
        self.last_request = now

    def __contains__(self, client: object) -> bool:
        return client in self._last_seen

    def count(self, now: float) -> int:
        self._prune(now)
        return len(self._last_seen)

    def from_address(self, address: str, now: float) -> int:
        """Players present now that came from ``address``."""
        self._prune(now)
        return sum(1 for seen in self._address.values() if seen == address)

    def idle_since(self) -> float:
        """When the most recent player stopped counting (in the future while one is active)."""
        return self.last_request + self.idle_timeout

    def _prune(self, now: float) -> None:
        expired = now - self.idle_timeout
        for client, seen in list(self._last_seen.items()):
            if seen > expired:
                break
            del self._last_seen[client]
            self._address.pop(client, None)
