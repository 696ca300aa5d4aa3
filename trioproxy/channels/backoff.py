"""The failure backoff (``TRIOPROXY_FAILURE_BACKOFF``): an id whose channel failed is refused for
a while, so players that keep reloading do not open engine session after engine session.

Refused with what the failed channel's players were told (no engine URL, no session id) and its
status: ``503`` when the channel was refused for memory, ``502`` when its upstream failed.
Pure bookkeeping: the caller gives the time.
"""

from __future__ import annotations

from ..errors import ChannelFailed, OverCapacity, ProxyError

__all__ = ["FailureBackoff"]


class FailureBackoff:
    """Ids refused until a time, each with the status and message of its failure."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._until: dict[str, tuple[float, int, str]] = {}

    def record(self, name: str, status: int, message: str, now: float) -> None:
        """Channel ``name`` failed at ``now``: refuse it for :attr:`seconds` from then."""
        if self.seconds <= 0:
            return
        for other, (until, _, _) in list(self._until.items()):
            if until <= now:
                del self._until[other]
        self._until[name] = (now + self.seconds, status, message)

    def refusal(self, name: str, now: float) -> ProxyError | None:
        """The error refusing a new channel ``name`` at ``now``, or None when it may start."""
        failed = self._until.get(name)
        if failed is None:
            return None
        until, status, message = failed
        if now >= until:
            del self._until[name]
            return None
        error = OverCapacity if status == 503 else ChannelFailed
        return error(f"{message} (retry in {until - now:.0f} s)", retry_after=until - now)
