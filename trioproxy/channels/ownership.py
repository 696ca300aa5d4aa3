"""One engine session per channel in the whole cluster: who owns a channel, and what the
others do.

Before each session of AceStream content (its first, and after a session failed), a channel of
an instance with a cluster store asks :meth:`Ownership.prepare`:

- it claims the channel's lease. Ours: the session is an engine session
  (:class:`~.upstreams.EngineUpstream`) on an engine with room in the whole cluster (its slot
  taken in the store, and one of its opening slots until the session is open); the lease is
  kept (renewed, the session noted beside it) by :meth:`Ownership.keeper`, a watch of that
  session, which ends it with
  :class:`~trioproxy.errors.OwnershipChanged` when another instance holds the lease after all;
- held by another instance: the session relays that owner's output
  (:class:`~.upstreams.RelayUpstream`). A relay that failed on an owner that still holds the
  lease waits (at most one lease) for the lease to lapse or change hands first;
- **takeover**: when we take a lease that lapsed, its last owner's engine session (noted beside
  the lease) is stopped in the background and its ``stream_ended`` is queued before our own
  ``stream_started`` (:attr:`Prepared.inherited`), so the orchestrator never books two streams
  for one content;
- engines busy opening sessions (``TRIOPROXY_MAX_OPENING_PER_ENGINE``): the owner waits for
  a slot (at most ``OPENING_WAIT``), keeping its lease, rather than ending the channel;
- the store unreachable: the session is an engine session all the same (the channel plays);
  the keeper claims the lease once the store answers, and gives the session up to the holder
  if another instance took it meanwhile (a duplicate lasts at most one renewal period after the
  store is back).

The lease and the engine slot are released when the channel's life ends (:meth:`release`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any, Protocol

import trio

from ..cluster import Claim, Holder, Leases, StoreUnavailable
from ..errors import NoEngineAvailable, OwnershipChanged
from ..upstream.engine import Engine, EngineClient, KeyType, Session
from ..upstream.orchestrator import stream_id
from .membership import Membership
from .upstreams import EngineUpstream, PendingUpstream, RelayUpstream, Upstream

__all__ = ["Engines", "Ownership", "Prepared", "Watch"]

log = logging.getLogger(__name__)

Watch = Callable[[Session], Awaitable[None]]
"""Runs beside an open session until cancelled; raises ``EngineError`` to end the session."""

UNSETTLED_LEASES = 3
"""Leases a session opened without the store waits for it before its ``stream_started`` is
sent all the same."""
OPENING = "#opening"
"""An engine's opening slots are counted in the store as the slots of ``<engine URL>#opening``."""
LAPSE_POLL = 0.5
"""Seconds between reads of a lease whose owner we could not relay from."""
OPENING_POLL = 0.25
"""Seconds between tries for an engine whose opening slots are all taken."""
OPENING_WAIT = 15.0
"""Seconds an owner waits for an opening slot (``TRIOPROXY_MAX_OPENING_PER_ENGINE``) before
its channel ends: the sessions being opened free theirs once open."""


class Engines(Protocol):
    """What deciding an owner's engine takes of the registry."""

    def acquire(self, avoid: AbstractSet[str]) -> Engine | None:
        """An engine with room here (not in ``avoid``), counted as loaded; None: none."""
        ...

    def release(self, engine: Engine) -> None: ...

    def client_for(self, engine: Engine) -> EngineClient: ...

    def client_for_instance(self, url: str) -> EngineClient: ...

    def stop_later(self, name: str, upstream: Upstream, client: EngineClient, s: Session) -> None:
        """Stop another instance's engine session in the background, with retries."""
        ...

    def spawn(self, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Run ``fn(*args)`` in the background (the registry's nursery)."""
        ...


@dataclass(frozen=True, slots=True)
class Prepared:
    """The next session of a channel, as the cluster decided it."""

    upstream: Upstream
    client: EngineClient
    inherited: dict[str, Any] | None = None
    """The lapsed owner's session (as :meth:`Ownership.keeper` noted it): its stream ends
    first."""


class Ownership:
    """The leases this instance holds, and the decisions that take or follow them."""

    def __init__(
        self,
        membership: Membership,
        engines: Engines,
        *,
        max_streams_per_engine: int,
        max_opening_per_engine: int,
        open_timeout: float,
        player_key: str | None,
    ) -> None:
        self.membership = membership
        self._engines = engines
        self._limit = max_streams_per_engine
        self._max_opening = max_opening_per_engine
        self._open_timeout = open_timeout
        self._player_key = player_key
        self.tokens: dict[str, int | None] = {}
        """The channels whose engine session runs here, by key: the fencing token of our
        lease (None while the store is unreachable: not claimed yet)."""
        self.takeovers = 0
        self._gates: dict[str, trio.Event] = {}

    @property
    def leases(self) -> Leases:
        return self.membership.leases

    async def prepare(self, name: str, upstream: Upstream, client: EngineClient) -> Prepared:
        """The next session of channel ``name`` after ``upstream`` (pending, or failed)."""
        if isinstance(upstream, EngineUpstream) and upstream.key in self.tokens:
            return Prepared(upstream, client)  # a failover of ours: the registry chose
        assert isinstance(upstream, PendingUpstream | RelayUpstream | EngineUpstream)
        failed_owner = upstream.owner.id if isinstance(upstream, RelayUpstream) else None
        kind = upstream.kind if isinstance(upstream, PendingUpstream | EngineUpstream) else "ts"
        give_up = trio.current_time() + self.membership.lease_seconds + LAPSE_POLL
        no_slot_until = trio.current_time() + OPENING_WAIT
        while True:
            claim = await self._claim(upstream.key)
            if claim is not None:
                self._settle(upstream.key)
            if claim is None or claim.ours:
                token = None if claim is None else claim.token
                engine = await self._engine_or_release(upstream.key, token)
                if engine is None and trio.current_time() < no_slot_until:
                    # Engines busy opening sessions (a burst of new channels): wait for a slot;
                    # claiming again keeps the lease meanwhile.
                    await trio.sleep(OPENING_POLL)
                    continue
                return self._own(name, upstream, kind, token, claim, engine)
            holder = claim.holder
            assert holder is not None
            if holder.instance.id != failed_owner or trio.current_time() >= give_up:
                return self._relay(upstream, holder)
            await trio.sleep(LAPSE_POLL)  # the owner we lost: wait for its lease to lapse

    async def _claim(self, key: str) -> Claim | None:
        """Our claim of ``key``'s lease; None when the store is unreachable."""
        try:
            return await self.leases.claim(key, self.membership.me(), self.membership.lease_seconds)
        except StoreUnavailable as error:
            self.membership.store_failed(f"claim {key}", error)
            return None

    def _relay(self, upstream: Upstream, holder: Holder) -> Prepared:
        self.membership.urls_seen.add(holder.instance.url)
        relay = RelayUpstream(
            holder.instance,
            upstream.key_type,
            upstream.key,
            self.membership.credential,
            self._player_key,
        )
        return Prepared(relay, self._engines.client_for_instance(holder.instance.url))

    async def _engine_or_release(self, key: str, token: int | None) -> Engine | None:
        """:meth:`_engine`; a failure gives our lease back (nobody waits on it)."""
        try:
            return await self._engine(key, token)
        except BaseException:
            if token is not None:
                self._engines.spawn(self._release_lease, key, token)
            raise

    def _own(
        self,
        name: str,
        upstream: Upstream,
        kind: Any,
        token: int | None,
        claim: Claim | None,
        engine: Engine | None,
    ) -> Prepared:
        if engine is None:
            if token is not None:
                # Nobody waits on a lease we cannot use: the next claimer takes it at once.
                self._engines.spawn(self._release_lease, upstream.key, token)
            raise NoEngineAvailable(
                "no engine has room for a new session in the whole cluster", retry_after=10
            )
        self.tokens[upstream.key] = token
        ours = EngineUpstream(engine, upstream.key_type, upstream.key, kind)
        inherited = None
        previous = None if claim is None else claim.holder
        if previous is not None and previous.instance.id != self.membership.id and previous.session:
            inherited = previous.session
            self._stop_inherited(name, upstream.key_type, previous)
        return Prepared(ours, self._engines.client_for(engine), inherited)

    async def _engine(self, key: str, token: int | None) -> Engine | None:
        """An engine with room here and in the whole cluster (its slot taken in the store);
        None when none has. Without the store, the last loads read decide."""
        avoid = self._full_engines()
        while (engine := self._engines.acquire(avoid)) is not None:
            if token is None:
                return engine
            try:
                taken = await self.leases.take_engine_slot(
                    engine.base_url, key, token, self._limit, self.membership.lease_seconds
                )
            except StoreUnavailable as error:
                self.membership.store_failed(f"engine slot of {key}", error)
                return engine
            if taken and await self._take_opening(engine, key, token):
                return engine
            self._engines.release(engine)
            avoid.add(engine.base_url)
        return None

    async def _take_opening(self, engine: Engine, key: str, token: int) -> bool:
        """One of the engine's opening slots of the whole cluster, until the session is open
        (the keeper gives it back) or ``TRIOPROXY_SESSION_TIMEOUT`` passed; False: every one is
        taken (the engine's channel slot is given back then)."""
        if not self._max_opening:
            return True
        opening = engine.base_url + OPENING
        try:
            if await self.leases.take_engine_slot(
                opening, key, token, self._max_opening, self._open_timeout
            ):
                return True
            await self.leases.release_engine_slot(engine.base_url, key)
        except StoreUnavailable as error:
            self.membership.store_failed(f"opening slot of {key}", error)
            return True
        return False

    def _full_engines(self) -> set[str]:
        if not self._limit:
            return set()
        loads = self.membership.engine_loads
        full = {url for url, load in loads.items() if load >= self._limit and OPENING not in url}
        if self._max_opening:
            full |= {
                url.removesuffix(OPENING)
                for url, load in loads.items()
                if url.endswith(OPENING) and load >= self._max_opening
            }
        return full

    def _stop_inherited(self, name: str, key_type: KeyType, previous: Holder) -> None:
        session = previous.session or {}
        command_url = session.get("command_url")
        engine_url = session.get("engine")
        self.takeovers += 1
        log.warning(
            "channel %s: took over from instance %s (%s): its engine session is stopped",
            name,
            previous.instance.id,
            previous.instance.url,
        )
        if not isinstance(command_url, str) or not isinstance(engine_url, str):
            return
        engine = Engine(engine_url, session.get("container_id"))
        stale = Session(
            playback_url="",
            stat_url="",
            command_url=command_url,
            playback_session_id=str(session.get("playback_session_id", "")),
            is_live=1,
            pid="",
        )
        upstream = EngineUpstream(engine, key_type, name)
        self._engines.stop_later(name, upstream, self._engines.client_for(engine), stale)

    def keeper(self, upstream: EngineUpstream) -> Watch:
        """The watch that keeps our lease of ``upstream``'s channel while its session runs."""

        async def keep(session: Session) -> None:
            await self._keep(upstream, session)

        return keep

    async def _keep(self, upstream: EngineUpstream, session: Session) -> None:
        key = upstream.key
        note = {
            "engine": upstream.engine.base_url,
            "container_id": upstream.engine.container_id,
            "command_url": session.command_url,
            "playback_session_id": session.playback_session_id,
            "stream_id": stream_id(key, session),
        }
        membership = self.membership
        noted = False
        unsettled_until = trio.current_time() + UNSETTLED_LEASES * membership.lease_seconds
        while True:
            if trio.current_time() >= unsettled_until and not self.gate(key).is_set():
                log.warning(
                    "channel %s: the cluster store is still unreachable: its stream_started "
                    "is sent without a lease",
                    key,
                )
                self._settle(key)
            try:
                token = self.tokens.get(key)
                if token is None or not await self.leases.renew(key, token, membership.period * 3):
                    token = await self._reclaim(key)
                    self._settle(key)
                    noted = False
                if not noted:
                    noted = await self.leases.note_session(key, token, note)
                    # Open: the engine's opening slot is free for the cluster's next open.
                    await self.leases.release_engine_slot(upstream.engine.base_url + OPENING, key)
                await self.leases.take_engine_slot(
                    upstream.engine.base_url, key, token, self._limit, membership.period * 3
                )
            except StoreUnavailable as error:
                membership.store_failed(f"renew {key}", error)
            await trio.sleep(membership.period)

    async def _reclaim(self, key: str) -> int:
        """Our lease again after it was lost (the store forgot it, or it was never claimed);
        raises ``OwnershipChanged`` when another instance holds it."""
        claim = await self.leases.claim(key, self.membership.me(), self.membership.lease_seconds)
        if claim.token is None:
            holder = claim.holder
            where = holder.instance.url if holder is not None else "another instance"
            self.tokens.pop(key, None)
            raise OwnershipChanged(f"instance {where} owns the channel now: relaying it")
        self.tokens[key] = claim.token
        return claim.token

    def gate(self, key: str, *, new: bool = False) -> trio.Event:
        """Set once the channel of ``key`` knows whether it owns its content (``new``: for a
        channel starting now): its ``stream_started`` waits for it, so that a session opened
        while the store was unreachable and then given up to another owner never reaches the
        orchestrator (its start and end are both dropped)."""
        if new or key not in self._gates:
            self._gates[key] = trio.Event()
        return self._gates[key]

    def _settle(self, key: str) -> None:
        self.gate(key).set()

    def release(self, key: str, engine: Engine | None) -> None:
        """The channel of ``key`` ended here: give its lease and engine slot back."""
        self._gates.pop(key, None)
        token = self.tokens.pop(key, None)
        if token is not None:
            self._engines.spawn(self._release_lease, key, token)
        if engine is not None:
            self._engines.spawn(self._release_slot, engine.base_url, key)

    async def _release_lease(self, key: str, token: int) -> None:
        with trio.move_on_after(self.membership.period):
            try:
                await self.leases.release(key, token)
            except StoreUnavailable as error:
                self.membership.store_failed(f"release {key}", error)

    async def _release_slot(self, engine: str, key: str) -> None:
        with trio.move_on_after(self.membership.period):
            try:
                await self.leases.release_engine_slot(engine, key)
            except StoreUnavailable as error:
                self.membership.store_failed(f"release {key} on {engine}", error)
