"""What instances of one cluster agree on through a shared store: who owns each channel, which
instances are alive, and how many channels each engine carries.

A channel's owner holds its **lease**: a record with a **fencing token** (a number that only
grows, per channel), renewed while the channel lives and released when it stops. Only the owner
opens engine sessions and sends the channel's events; it checks its token on every renewal and
before every engine action, so an owner that was paused past its lease acts no more once
another instance took over. Beside the lease the owner keeps what a successor needs to end its
stream cleanly: the engine session's command URL and its ``stream_started`` event.

:class:`Leases` is the protocol; :mod:`.redis` implements it on Redis (``TRIOPROXY_REDIS_URL``)
and :mod:`.memory` in one process (tests on the virtual clock; several in-memory instances
share one). Every call is bounded in time and raises :class:`StoreUnavailable` when the store
cannot answer; nothing here retries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "LAST_KEPT",
    "Claim",
    "Holder",
    "Instance",
    "Leases",
    "StoreUnavailable",
]


LAST_KEPT = 3600.0
"""Seconds a noted session is kept past its lease, for a successor to end it."""


class StoreUnavailable(Exception):
    """The shared store (Redis) did not answer in time, or refused: nothing was changed that
    the caller can rely on."""


@dataclass(frozen=True, slots=True)
class Instance:
    """One proxy instance as the others see it."""

    id: str
    """Unique per process run (a restarted instance is a new one)."""
    url: str
    """Where the other instances reach it (``TRIOPROXY_INSTANCE_URL``)."""
    started_at: float = 0.0
    """Wall-clock seconds (``time.time()``) when it started."""
    facts: dict[str, Any] = field(default_factory=dict)
    """What its heartbeat says of it (channels, players, relays): shown by ``/proxy/status``."""


@dataclass(frozen=True, slots=True)
class Holder:
    """The lease of one channel, as the store holds it."""

    instance: Instance
    """Who holds it; without ``facts`` (those are in its heartbeat: :meth:`Leases.instances`)."""
    token: int
    """The fencing token: grows with every new owner of the channel, even across a store restart
    that lost every key (Redis starts a channel's counter from its clock in ms)."""
    session: dict[str, Any] | None = None
    """What the owner noted of its current engine session (:meth:`Leases.note_session`):
    ``command_url`` and ``started`` (the ``stream_started`` event body), or None."""


@dataclass(frozen=True, slots=True)
class Claim:
    """The answer to :meth:`Leases.claim`: ours (``token`` set), or held by ``holder``.

    A new lease of ours names in ``holder`` the channel's last owner when another instance
    noted a session (:meth:`Leases.note_session`) and neither released its lease nor noted
    the session stopped: a takeover. Its session is ours to end; a later claim no longer
    names it."""

    token: int | None
    holder: Holder | None = None

    @property
    def ours(self) -> bool:
        return self.token is not None


class Leases(Protocol):
    """The cluster's shared store. ``channel`` is a channel's key (its content id or source)."""

    async def claim(self, channel: str, me: Instance, ttl: float) -> Claim:
        """Take the lease of ``channel`` for ``ttl`` seconds when nobody holds it (a new, higher
        token); else say who holds it. A lease ``me`` (same ``id``) already holds is not taken
        again: it is renewed for ``ttl`` and answered as ours with its token unchanged."""
        ...

    async def renew(self, channel: str, token: int, ttl: float) -> bool:
        """Extend our lease by ``ttl`` seconds: False when ``token`` no longer holds it (another
        instance took it over, it lapsed, or the store restarted and lost it: :meth:`holder` tells
        which, and :meth:`claim` may take it again with a new token)."""
        ...

    async def release(self, channel: str, token: int) -> None:
        """Give the lease up, if ``token`` still holds it."""
        ...

    async def holder(self, channel: str) -> Holder | None:
        """Who holds ``channel`` now; None when nobody does (never held, released or lapsed)."""
        ...

    async def note_session(self, channel: str, token: int, session: dict[str, Any] | None) -> bool:
        """Keep ``session`` beside our lease (None: the session is stopped). False when
        ``token`` no longer holds it."""
        ...

    async def take_engine_slot(
        self, engine: str, channel: str, token: int, limit: int, ttl: float
    ) -> bool:
        """Count ``channel`` on ``engine`` for ``ttl`` seconds if fewer than ``limit`` channels
        of the cluster are counted there now (``limit`` 0: no limit); True when counted (a channel
        counted already is renewed). ``token`` must hold the channel's lease (False otherwise);
        on Redis the lease is checked just before the count, not atomically with it (they live
        in different Redis Cluster slots)."""
        ...

    async def release_engine_slot(self, engine: str, channel: str) -> None:
        """Stop counting ``channel`` on ``engine``."""
        ...

    async def engine_loads(self) -> dict[str, int]:
        """How many channels of the cluster each engine carries now."""
        ...

    async def heartbeat(self, me: Instance, ttl: float) -> None:
        """Say ``me`` is alive for ``ttl`` seconds, with its facts."""
        ...

    async def instances(self) -> list[Instance]:
        """The instances alive now (their heartbeat has not lapsed), oldest first."""
        ...

    async def leases(self) -> dict[str, Holder]:
        """Every channel held now, by key."""
        ...
