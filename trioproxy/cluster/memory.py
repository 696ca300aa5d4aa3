"""The shared store in one process: :class:`MemoryLeases`, on Trio's clock.

Several in-memory instances (several registries) share one :class:`MemoryLeases` to act as a
cluster in a test; on the autojump clock its leases lapse at exact virtual times. It behaves as
:class:`~trioproxy.cluster.redis.RedisLeases` does, except that its tokens come from one counter
(1, 2, 3, … across channels) that even :meth:`MemoryLeases.forget` keeps.

Faults: ``store.down = True`` makes every call raise
:class:`~trioproxy.cluster.leases.StoreUnavailable` until it is set back; :meth:`forget` is a
store restart that lost everything (leases, engine slots, heartbeats).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import trio

from . import records
from .leases import LAST_KEPT, Claim, Holder, Instance, StoreUnavailable

__all__ = ["MemoryLeases"]


@dataclass
class _Lease:
    instance: str
    """The holder's record, as :func:`~trioproxy.cluster.records.encode_instance` writes it."""
    token: int
    expires: float
    session: str = ""


class MemoryLeases:
    """:class:`~trioproxy.cluster.leases.Leases` in memory; lapses on ``trio.current_time()``."""

    def __init__(self) -> None:
        self.down = False
        """True: the store is unreachable; every call raises ``StoreUnavailable``."""
        self.calls = 0
        """Calls answered so far (those refused while down included)."""
        self._tokens = itertools.count(1)
        self._leases: dict[str, _Lease] = {}
        self._last: dict[str, _Lease] = {}
        """Each channel's last owner, kept past its lease for a successor (``LAST_KEPT``)."""
        self._slots: dict[str, dict[str, float]] = {}
        self._beats: dict[str, tuple[str, float]] = {}

    def forget(self) -> None:
        """Lose everything, as a Redis restarted without persistence does."""
        self._leases.clear()
        self._last.clear()
        self._slots.clear()
        self._beats.clear()

    async def _enter(self) -> float:
        await trio.lowlevel.checkpoint()
        self.calls += 1
        if self.down:
            raise StoreUnavailable("the in-memory store is down")
        return trio.current_time()

    def _live(self, channel: str, now: float) -> _Lease | None:
        lease = self._leases.get(channel)
        if lease is not None and lease.expires <= now:
            del self._leases[channel]
            return None
        return lease

    def _held(self, channel: str, token: int, now: float) -> _Lease | None:
        lease = self._live(channel, now)
        return lease if lease is not None and lease.token == token else None

    async def claim(self, channel: str, me: Instance, ttl: float) -> Claim:
        now = await self._enter()
        lease = self._live(channel, now)
        if lease is not None:
            if records.decode_instance(lease.instance).id == me.id:
                lease.expires = now + ttl
                return Claim(lease.token)
            return Claim(None, records.holder(lease.instance, lease.token, lease.session))
        token = next(self._tokens)
        self._leases[channel] = _Lease(records.encode_instance(me, facts=False), token, now + ttl)
        last = self._last.pop(channel, None)
        if last is None or last.expires <= now or not last.session:
            return Claim(token)
        if records.decode_instance(last.instance).id == me.id:
            return Claim(token)
        return Claim(token, records.holder(last.instance, last.token, last.session))

    async def renew(self, channel: str, token: int, ttl: float) -> bool:
        now = await self._enter()
        lease = self._held(channel, token, now)
        if lease is None:
            return False
        lease.expires = now + ttl
        return True

    async def release(self, channel: str, token: int) -> None:
        now = await self._enter()
        if self._held(channel, token, now) is not None:
            del self._leases[channel]
            self._last.pop(channel, None)

    async def holder(self, channel: str) -> Holder | None:
        now = await self._enter()
        lease = self._live(channel, now)
        if lease is None:
            return None
        return records.holder(lease.instance, lease.token, lease.session)

    async def note_session(self, channel: str, token: int, session: dict[str, Any] | None) -> bool:
        now = await self._enter()
        lease = self._held(channel, token, now)
        if lease is None:
            return False
        lease.session = records.encode_session(session)
        if lease.session:
            self._last[channel] = _Lease(lease.instance, token, now + LAST_KEPT, lease.session)
        else:
            self._last.pop(channel, None)
        return True

    def _engine(self, engine: str, now: float) -> dict[str, float]:
        slots = self._slots.get(engine, {})
        for channel in [c for c, expires in slots.items() if expires <= now]:
            del slots[channel]
        return slots

    async def take_engine_slot(
        self, engine: str, channel: str, token: int, limit: int, ttl: float
    ) -> bool:
        now = await self._enter()
        if self._held(channel, token, now) is None:
            return False
        slots = self._engine(engine, now)
        if channel not in slots and limit > 0 and len(slots) >= limit:
            return False
        self._slots[engine] = slots
        slots[channel] = now + ttl
        return True

    async def release_engine_slot(self, engine: str, channel: str) -> None:
        await self._enter()
        self._slots.get(engine, {}).pop(channel, None)

    async def engine_loads(self) -> dict[str, int]:
        now = await self._enter()
        loads = {engine: len(self._engine(engine, now)) for engine in list(self._slots)}
        for engine in [e for e, load in loads.items() if load == 0]:
            del self._slots[engine], loads[engine]
        return loads

    async def heartbeat(self, me: Instance, ttl: float) -> None:
        now = await self._enter()
        self._beats[me.id] = (records.encode_instance(me), now + ttl)

    async def instances(self) -> list[Instance]:
        now = await self._enter()
        for lapsed in [i for i, (_, expires) in self._beats.items() if expires <= now]:
            del self._beats[lapsed]
        alive = [records.decode_instance(text) for text, _ in self._beats.values()]
        return sorted(alive, key=lambda instance: (instance.started_at, instance.id))

    async def leases(self) -> dict[str, Holder]:
        now = await self._enter()
        return {
            channel: records.holder(lease.instance, lease.token, lease.session)
            for channel in sorted(self._leases)
            if (lease := self._live(channel, now)) is not None
        }
