"""How a player joins a channel: the one decision every way in goes through.

HLS playlists, MPEG-TS streams, configured sources and their renditions all reach a channel
through :func:`join`, given *what* the player wants (:data:`Want`) and *who* it is
(:class:`Visitor`: its address as the per-address caps count it, and the token that tells it
apart on the channel). In order, each refusal a ``ProxyError`` the HTTP layer answers as it is:

1. the channel is found, or started (``Registry.get_or_start*``): at shutdown, in its
   failure backoff, looping content, over ``TRIOPROXY_MAX_CHANNELS``, over the visitor's
   address caps on channels and session opens, when its memory reserve does not fit, or when no
   engine has room, nothing is started and nothing stays reserved;
2. the player caps: ``TRIOPROXY_MAX_PLAYERS_PER_CHANNEL`` and
   ``TRIOPROXY_MAX_PLAYERS_PER_ADDRESS`` (a player the channel knows already passes);
3. a channel that failed answers its failure as players may see it (no engine URL, no session
   id: :mod:`.answers`), ``503`` for memory and ``502`` otherwise.

What a player does once joined (wait for the first segments, read the TS stream) is the
caller's; so is counting it as present (``Channel.touch`` for HLS, the TS stream's
``joined`` for TS), under the same token and address.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from ..errors import Forbidden, NotOwner
from ..upstream.engine import KeyType
from .answers import check_not_failed
from .upstreams import RelayUpstream

if TYPE_CHECKING:
    from .channel import Channel
    from .registry import Registry

__all__ = ["Content", "Relayed", "Rendition", "Source", "Visitor", "Want", "join", "relay_visitor"]


@dataclass(frozen=True, slots=True)
class Content:
    """An AceStream content id or infohash, played from an engine."""

    key_type: KeyType
    key: str


@dataclass(frozen=True, slots=True)
class Source:
    """A configured source (``TRIOPROXY_SOURCES``): its name and URL."""

    name: str
    url: str


@dataclass(frozen=True, slots=True)
class Rendition:
    """Rendition ``index`` (alternative audio or subtitles) of a running channel's variant."""

    parent: Channel
    index: int


@dataclass(frozen=True, slots=True)
class Relayed:
    """AceStream content this instance owns in its cluster, asked for by another instance's
    relay: served only while this instance's channel of it is not a relay itself (``409``)."""

    key_type: KeyType
    key: str


Want = Content | Source | Rendition | Relayed


@dataclass(frozen=True, slots=True)
class Visitor:
    """Who joins: ``address`` as the per-address caps count it (``per_address.address_key`` of
    the address the edge believed), and ``token``, what tells this player apart on a channel.
    A media server (``per_address.is_media_server``) is not ``capped``: no per-address cap
    counts it."""

    address: str
    token: str
    capped: bool = True

    @property
    def counted(self) -> str | None:
        """The address the per-address caps count this visitor under; None: none."""
        return self.address if self.capped else None


def join(registry: Registry, want: Want, visitor: Visitor) -> Channel | None:
    """The channel ``visitor`` may play for ``want``, started if need be; None for a rendition
    the parent's variant does not have. Never waits."""
    channel = _start(registry, want, visitor.counted)
    if channel is None:
        return None
    now = trio.current_time()
    registry.admission.check_player(channel, visitor.token, now)
    registry.addresses.check_player(channel, visitor.token, visitor.counted, now)
    check_not_failed(channel)
    return channel


def _start(registry: Registry, want: Want, address: str | None) -> Channel | None:
    match want:
        case Content(key_type=key_type, key=key):
            return registry.get_or_start(key_type, key, address=address)
        case Source(name=name, url=url):
            return registry.get_or_start_source(name, url, address=address)
        case Rendition(parent=parent, index=index):
            return registry.get_or_start_rendition(parent, index, address=address)
        case Relayed(key=key):
            channel = registry.get(key)
            if channel is None or isinstance(channel.upstream, RelayUpstream):
                raise NotOwner(f"this instance does not own channel {key}: ask its owner")
            return channel


def relay_visitor(registry: Registry, credential: str, visitor: Visitor) -> Visitor:
    """``visitor`` as a relay of an instance of the cluster: no per-address cap counts it.
    A credential no instance alive has is refused (``403``)."""
    membership = registry.membership
    if membership is None or not membership.is_instance(credential):
        raise Forbidden("only instances of the cluster may relay a channel")
    return Visitor(visitor.address, visitor.token, capped=False)
