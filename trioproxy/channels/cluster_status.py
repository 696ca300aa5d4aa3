"""The cluster as ``/proxy/status`` and ``/metrics`` show it (many instances only).

A channel's **role** here: ``owner`` (its engine session runs here: :class:`~.upstreams.
EngineUpstream`), ``relay`` (it reads the owner's MPEG-TS: :class:`~.upstreams.RelayUpstream`)
or ``pending`` (its next session is being decided: :class:`~.upstreams.PendingUpstream`).
Channels of sources and renditions are no one's in the cluster: every instance reads them
itself (no role).

**Relay lag**, measured where it can be, on each side of a relay's connection:

- on the relay, ``since_data_seconds``: seconds since anything last arrived from the owner. The
  owner sends media as it arrives and, when the engine stalls, a null packet at least every
  second (``channels/ts.py``): beyond a second or so, the connection to the owner stalls;
- on the owner, each relay reading a channel is one of its TS players, marked with the relay's
  instance (``TsPlayer.relay``); its ``lag_seconds`` is how long the oldest media it has not been
  sent whole has waited here (``TsStream.lag``): how far behind the owner's live edge the relay
  reads. A relay lagging past ``TRIOPROXY_TS_MAX_LAG`` segments is cut loose, as any TS player.

Instance URLs are internal addresses and a heartbeat's relay token is a credential: the keyless
view (:mod:`.public`) keeps counts and roles only, and :func:`instance_secrets` names every
instance address it must hide, in texts too.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import trio

from ..errors import public_url
from .membership import RELAY_TOKEN, Membership
from .ts import TsStream
from .upstreams import EngineUpstream, PendingUpstream, RelayUpstream

if TYPE_CHECKING:
    from .channel import Channel
    from .registry import Registry

__all__ = [
    "ROLES",
    "channel_cluster",
    "cluster_status",
    "instance_secrets",
    "relay_players",
    "role_of",
]

ROLES = ("owner", "relay", "pending")
"""Every role a channel can have in the cluster; each is always counted."""


def role_of(channel: Channel) -> str | None:
    """``channel``'s role in the cluster (see the module); None: none (a source)."""
    upstream = channel.upstream
    if isinstance(upstream, RelayUpstream):
        return "relay"
    if isinstance(upstream, PendingUpstream):
        return "pending"
    if isinstance(upstream, EngineUpstream):
        return "owner"
    return None


def since_data(channel: Channel, now: float) -> float | None:
    """On a relay: seconds since anything arrived from the owner; None while no session of it
    is open."""
    if not isinstance(channel.upstream, RelayUpstream) or channel.session is None:
        return None
    return max(0.0, now - channel.feed.advanced_at)


def relay_players(stream: TsStream, now: float) -> list[dict[str, Any]]:
    """The relays of other instances reading ``stream`` here, and how far behind they are."""
    shown = []
    for player in stream.players:
        if player.relay is None:
            continue
        segments, seconds = stream.lag(player)
        shown.append(
            {
                "instance": player.relay,
                "connected_seconds": round(now - player.connected_at, 3),
                "bytes_sent": player.sent_bytes,
                "lag_segments": segments,
                "lag_seconds": round(seconds, 3),
            }
        )
    return shown


def channel_cluster(channel: Channel, membership: Membership, now: float) -> dict[str, Any]:
    """What ``channel`` is in the cluster: its role, its owner when it relays, relay lag."""
    upstream = channel.upstream
    role = role_of(channel)
    owner = None
    if isinstance(upstream, RelayUpstream):
        owner = {"id": upstream.owner.id, "url": upstream.owner.url}
    elif role == "owner":
        owner = {"id": membership.id, "url": membership.url}
    lag = since_data(channel, now)
    return {
        "role": role,
        "owner": owner,
        "since_data_seconds": None if lag is None else round(lag, 3),
        "relays": relay_players(channel.ts, now),
    }


def cluster_status(registry: Registry) -> dict[str, Any] | None:
    """The cluster's section of the status; None for a single instance."""
    membership = registry.membership
    engines = registry.engines
    ownership = engines.ownership
    if membership is None or ownership is None:
        return None
    roles = Counter(role_of(channel) for channel in registry.channels)
    return {
        "instance": {
            "id": membership.id,
            "url": membership.url,
            "started_at": membership.started_at,
            "store_reachable": membership.reachable,
            "store_failures": membership.failures,
            "takeovers": ownership.takeovers,
            "lease_seconds": membership.lease_seconds,
        },
        "instances": [
            {
                "id": instance.id,
                "url": instance.url,
                "started_at": instance.started_at,
                "me": instance.id == membership.id,
                "facts": {
                    name: fact for name, fact in instance.facts.items() if name != RELAY_TOKEN
                },
            }
            for instance in membership.instances
        ],
        "channels": {role: roles[role] for role in ROLES},
    }


def instance_secrets(registry: Registry) -> list[str]:
    """Every instance address the keyless status must not show: each URL's public form
    (``scheme://host[:port]``), its ``host[:port]`` (as texts name it) and its host."""
    membership = registry.membership
    if membership is None:
        return []
    urls = set(membership.urls_seen)
    for channel in (*registry.channels, *registry.closing):
        if isinstance(channel.upstream, RelayUpstream):
            urls.add(channel.upstream.owner.url)
    found: set[str] = set()
    for url in urls:
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError:
            continue
        found.update(form for form in (public_url(url), parts.netloc, host) if form)
    return sorted(found, key=len, reverse=True)


def relay_lags(registry: Registry) -> tuple[float, float, int]:
    """The largest relay lag on each side here (relay: since data from the owner; owner: a relay
    player's lag), and how many relays of other instances read channels here."""
    now = trio.current_time()
    on_relay = on_owner = 0.0
    readers = 0
    for channel in registry.channels:
        lag = since_data(channel, now)
        if lag is not None:
            on_relay = max(on_relay, lag)
        for player in channel.ts.players:
            if player.relay is not None:
                readers += 1
                on_owner = max(on_owner, channel.ts.lag(player)[1])
    return on_relay, on_owner, readers
