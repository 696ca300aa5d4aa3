"""What an instance's heartbeat tells its cluster of its channels (``membership.py``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import trio

from .upstreams import RelayUpstream

if TYPE_CHECKING:
    from .channel import Channel

__all__ = ["facts_of"]


def facts_of(channels: Iterable[Channel]) -> dict[str, Any]:
    """What an instance's heartbeat tells the cluster of its channels (``/proxy/status``)."""
    now = trio.current_time()
    channels = list(channels)
    relays = [c.key for c in channels if isinstance(c.upstream, RelayUpstream)]
    return {
        "channels": len(channels),
        "owned": len(channels) - len(relays),
        "relays": len(relays),
        "players": sum(c.player_count(now) for c in channels),
    }
