"""Caps per client address: player slots over all channels, channels started, session opens.

One client that varies its token and User-Agent is still one address, so it cannot fill a
channel's player cap, every engine's opening slots or the proxy's channel cap for everyone else.
The address is the one :func:`~trioproxy.http.guards.client_address` believes (behind
``TRIOPROXY_TRUSTED_PROXIES``); IPv6 addresses count by their /64, the usual size of one
household's network. Over a cap a request gets 503 with ``Retry-After`` and nothing is started.
Pure bookkeeping: no I/O.

- ``TRIOPROXY_MAX_PLAYERS_PER_ADDRESS``: players from the address, HLS and TS, on every running
  channel; an HLS player stops counting when it leaves (``HLS_CLIENT_IDLE_TIMEOUT``), a TS player
  when its connection closes, both when their channel stops.
- ``TRIOPROXY_MAX_CHANNELS_PER_ADDRESS``: running channels the address started, whoever watches
  them now.
- ``TRIOPROXY_MAX_OPENING_PER_ADDRESS``: those of them still waiting for their engine session
  (stopped ones included: the engine works on an open until it answers).

A media server (``TRIOPROXY_MEDIA_SERVERS``) is one address with a household of viewers behind
it: :func:`is_media_server` decides, for every way in, that its :class:`~.join.Visitor` is not
capped, so none of these caps applies to it (the proxy's own caps still do: channels, players
per channel, engine room).
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..config import Config, IPNetwork
from ..errors import OverCapacity

if TYPE_CHECKING:
    from .channel import Channel

__all__ = ["AddressLimits", "address_key", "is_media_server"]

CHANNEL_RETRY_AFTER = 10.0
PLAYER_RETRY_AFTER = 10.0
OPENING_RETRY_AFTER = 2.0
IPV6_PREFIX = 64


def address_key(address: str) -> str:
    """What the caps count by: the IPv4 address, or the /64 of an IPv6 one (an IPv4-mapped one
    is its IPv4 address); anything unparseable as it is."""
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_PREFIX), strict=False))
    return str(ip)


def is_media_server(address: str, media_servers: tuple[IPNetwork, ...]) -> bool:
    """Is ``address`` (as the edge believes it) one of ``TRIOPROXY_MEDIA_SERVERS``?"""
    if not media_servers:
        return False
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in media_servers)


class AddressLimits:
    """Who started which channel, and the per-address caps checked against that.

    ``running`` and ``closing`` give the registry's channels; the registry reports each channel
    an address started (:meth:`started`) and each channel that is gone (:meth:`forget`).
    """

    def __init__(
        self,
        config: Config,
        running: Callable[[], Iterable[Channel]],
        closing: Callable[[], Iterable[Channel]],
    ) -> None:
        self.max_players = config.max_players_per_address
        self.max_channels = config.max_channels_per_address
        self.max_opening = config.max_opening_per_address
        self.refused: Counter[str] = Counter()
        self._running = running
        self._closing = closing
        self._starters: dict[Channel, str] = {}

    # ---- bookkeeping ------------------------------------------------------------------------

    def started(self, channel: Channel, address: str | None) -> None:
        if address is not None:
            self._starters[channel] = address

    def forget(self, channel: Channel) -> None:
        """``channel`` is closed: nothing of it counts any more."""
        self._starters.pop(channel, None)

    def started_by(self, address: str) -> list[Channel]:
        """Running channels ``address`` started."""
        return [c for c in self._running() if self._starters.get(c) == address]

    def opening_for(self, address: str) -> list[Channel]:
        """Channels ``address`` started that are still opening an engine session."""
        return [
            c
            for c in [*self._running(), *self._closing()]
            if self._starters.get(c) == address and c.upstream.engine_load is not None and c.opening
        ]

    def players_from(self, address: str, now: float) -> int:
        """HLS players present now and TS players connected, from ``address``."""
        return sum(
            c.clients.from_address(address, now)
            + sum(1 for player in c.ts.players if address_key(player.label) == address)
            for c in self._running()
        )

    # ---- the caps ---------------------------------------------------------------------------

    def check_channel(self, address: str | None, *, opens_session: bool) -> None:
        """May ``address`` start one more channel (that ``opens_session`` on an engine)?"""
        if address is None:
            return
        if self.max_channels and len(self.started_by(address)) >= self.max_channels:
            self.refused["channels"] += 1
            raise OverCapacity(
                f"your address runs {self.max_channels} channels already "
                "(TRIOPROXY_MAX_CHANNELS_PER_ADDRESS)",
                retry_after=CHANNEL_RETRY_AFTER,
            )
        opening = len(self.opening_for(address)) if opens_session and self.max_opening else 0
        if opening and opening >= self.max_opening:
            self.refused["opening"] += 1
            raise OverCapacity(
                f"your address is opening {self.max_opening} engine session(s) already "
                "(TRIOPROXY_MAX_OPENING_PER_ADDRESS); retry shortly",
                retry_after=OPENING_RETRY_AFTER,
            )

    def check_player(self, channel: Channel, client: str, address: str | None, now: float) -> None:
        """A player new to ``channel`` is refused when ``address`` has ``max_players`` already
        (None: a media server, never refused here)."""
        if address is None or not self.max_players or client in channel.clients:
            return
        if self.players_from(address, now) >= self.max_players:
            self.refused["players"] += 1
            raise OverCapacity(
                f"your address has {self.max_players} players already "
                "(TRIOPROXY_MAX_PLAYERS_PER_ADDRESS)",
                retry_after=PLAYER_RETRY_AFTER,
            )

    def snapshot(self) -> dict[str, Any]:
        return {
            "max_players": self.max_players,
            "max_channels": self.max_channels,
            "max_opening": self.max_opening,
            "addresses": len(set(self._starters.values())),
            "refused": dict(self.refused),
        }
