"""Admission control: caps on channels, on players per channel and on session opens per engine.

Over a cap the request gets 503 with ``Retry-After``; nothing that is already running is
disturbed. The caps and how full they are show in ``/proxy/status``. Pure bookkeeping: no I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..config import Config
from ..errors import OverCapacity
from ..upstream.engine import Engine

if TYPE_CHECKING:
    from .channel import Channel

__all__ = ["Admission", "opening_counts"]

CHANNEL_RETRY_AFTER = 10.0
PLAYER_RETRY_AFTER = 10.0
OPENING_RETRY_AFTER = 2.0


def opening_counts(channels: Iterable[Channel]) -> Counter[str]:
    """Sessions being opened, per engine URL (see :attr:`Channel.opening`).

    Channels of sources and renditions open nothing on an engine and are not counted.
    """
    counts: Counter[str] = Counter()
    for channel in channels:
        engine = channel.upstream.engine_load
        if engine is not None and channel.opening:
            counts[engine.base_url] += 1
    return counts


class Admission:
    """Checks a new channel or a new player against the configured caps."""

    def __init__(self, config: Config) -> None:
        self.max_channels = config.max_channels
        self.max_players = config.max_players_per_channel
        self.max_opening = config.max_opening_per_engine
        self.refused: Counter[str] = Counter()

    def check_channel(self, running: int) -> None:
        if running >= self.max_channels:
            self.refused["channels"] += 1
            raise OverCapacity(
                f"the proxy runs {self.max_channels} channels already (TRIOPROXY_MAX_CHANNELS)",
                retry_after=CHANNEL_RETRY_AFTER,
            )

    def engine_free(self, opening: Counter[str]) -> Callable[[Engine], bool]:
        """A predicate for the directory: may this engine take one more session open now?"""

        def free(engine: Engine) -> bool:
            return opening[engine.base_url] < self.max_opening

        return free

    def refuse_opening(self) -> OverCapacity:
        """The error for a new channel when every engine with room is busy opening sessions."""
        self.refused["opening"] += 1
        return OverCapacity(
            f"every engine with room is opening {self.max_opening} session(s) already "
            "(TRIOPROXY_MAX_OPENING_PER_ENGINE); retry shortly",
            retry_after=OPENING_RETRY_AFTER,
        )

    def check_player(self, channel: Channel, client: str, now: float) -> None:
        """A player new to ``channel`` is refused when the channel has ``max_players`` already."""
        if client in channel.clients:
            return
        if channel.player_count(now) >= self.max_players:  # HLS and TS players alike
            self.refused["players"] += 1
            raise OverCapacity(
                f"channel {channel.name} serves {self.max_players} players already "
                "(TRIOPROXY_MAX_PLAYERS_PER_CHANNEL)",
                retry_after=PLAYER_RETRY_AFTER,
            )

    def snapshot(self, channels: int, opening: Counter[str]) -> dict[str, Any]:
        return {
            "max_channels": self.max_channels,
            "channels": channels,
            "max_players_per_channel": self.max_players,
            "max_opening_per_engine": self.max_opening,
            "opening": dict(opening),
            "refused": dict(self.refused),
        }
