"""The engines channels play from, as the registry hands them out: the channels'
:class:`~.failover.EnginePool`, and (with a cluster store) what :mod:`.ownership` decides with.

Without a cluster an AceStream channel starts on an engine the registry picked, and a failed
session is replaced here (another engine with room and a closed breaker, else the same one).
With a cluster a channel starts :class:`~.upstreams.PendingUpstream` and every session that is
not a failover of ours is decided by :meth:`~.ownership.Ownership.prepare`: our own engine
session, or a relay of the owner's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from collections.abc import Set as AbstractSet
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

from ..cluster import Leases
from ..config import Config
from ..errors import EngineError
from ..observability.metrics import FAILOVERS
from ..upstream.engine import Engine, EngineClient, Session
from ..upstream.policy import UpstreamPolicy
from .admission import Admission, opening_counts
from .directory import EngineDirectory
from .membership import Membership
from .ownership import Ownership, Prepared, Watch
from .stops import LaterStops
from .upstreams import EngineUpstream, PendingUpstream, RelayUpstream, Upstream

if TYPE_CHECKING:
    from .channel import Channel

__all__ = ["ChannelEngines"]


class ChannelEngines:
    """Engines for channels' sessions: picked, replaced, watched, and stopped later."""

    def __init__(
        self,
        config: Config,
        directory: EngineDirectory,
        policy: UpstreamPolicy,
        admission: Admission,
        channels: Callable[[], Iterable[Channel]],
    ) -> None:
        self.config = config
        self.directory = directory
        self.policy = policy
        self.admission = admission
        self._channels = channels
        self.ownership: Ownership | None = None
        """Set when the proxy runs in a cluster: who owns which channel."""
        self.later_stops = LaterStops(config.stop_timeout)
        """Engine sessions closed channels left open; stopped later, given up at shutdown."""
        self.nursery: trio.Nursery | None = None
        """Where later stops and lease releases run: the registry's, while it runs."""
        self.failovers = 0
        """Failovers of every channel: engine sessions replaced by a new one (on another
        engine, or the same one when no other has room)."""

    def join_cluster(self, leases: Leases) -> Membership:
        """Decide sessions with the cluster whose store is ``leases`` (``ownership.py``)."""
        config = self.config
        membership = Membership(leases, config.instance_address(), config.lease_seconds)
        self.ownership = Ownership(
            membership,
            self,
            max_streams_per_engine=config.max_streams_per_engine,
            max_opening_per_engine=config.max_opening_per_engine,
            open_timeout=config.session_timeout,
            player_key=next(iter((*config.player_keys, *config.player_keys_file)), None),
        )
        return membership

    # ---- a new channel, and its next session ------------------------------------------------

    def gates(self, upstream: Upstream) -> list[trio.Event]:
        """What a new channel's first ``stream_started`` waits for: in a cluster, to know
        whether it owns its content (``Ownership.gate``)."""
        if self.ownership is None or not isinstance(upstream, PendingUpstream):
            return []
        return [self.ownership.gate(upstream.key, new=True)]

    def acquire(self, avoid: AbstractSet[str] = frozenset()) -> Engine | None:
        """An engine with room (not in ``avoid``) and a free opening slot, counted as loaded;
        None when engines have room but none a free opening slot; raises when none has room."""
        free = self.admission.engine_free(opening_counts(self._channels()))
        if avoid:
            return self.directory.acquire_if(lambda e: e.base_url not in avoid and free(e))
        return self.directory.acquire_if(free)

    def release(self, engine: Engine) -> None:
        self.directory.release(engine)

    def client_for(self, engine: Engine) -> EngineClient:
        return self.policy.for_engine(engine)

    def client_for_instance(self, url: str) -> EngineClient:
        return self.policy.for_source(url)

    def stop_later(self, name: str, upstream: Upstream, client: EngineClient, s: Session) -> None:
        if self.nursery is not None:
            self.later_stops.start(self.nursery, name, upstream, client, s)

    async def prepare(self, name: str, upstream: Upstream, client: EngineClient) -> Prepared:
        if self.ownership is None:
            return Prepared(upstream, client)
        return await self.ownership.prepare(name, upstream, client)

    def watches(self, upstream: Upstream) -> list[Watch]:
        if not isinstance(upstream, EngineUpstream):
            return []
        watches: list[Watch] = [partial(self._watch_listed, upstream.engine)]
        if self.ownership is not None and upstream.key in self.ownership.tokens:
            watches.append(self.ownership.keeper(upstream))
        return watches

    async def _watch_listed(self, engine: Engine, _session: Session) -> None:
        why = await self.directory.wait_unlisted(engine)
        raise EngineError(f"engine {engine.base_url} {why}")

    # ---- failover ---------------------------------------------------------------------------

    def replace(
        self, failed: Upstream, *, same: bool, trip: bool
    ) -> tuple[Upstream, EngineClient] | None:
        """The next upstream of a channel whose session on ``failed`` failed: another engine
        with room and a closed breaker (least loaded), else (with ``same``) the same engine
        again, else None. ``trip``: the engine failed (not the content): open its breaker.
        In a cluster, a relay's, or a session whose lease went elsewhere, is decided again."""
        if isinstance(failed, RelayUpstream | PendingUpstream):
            return failed, self.policy.for_source(failed.engine.base_url)  # decided again
        if self.ownership is not None and failed.key not in self.ownership.tokens:
            self.directory.release(failed.engine)  # the lease went elsewhere: relay it
            pending = PendingUpstream(failed.key_type, failed.key, self.config.upstream_mode)
            return pending, self.policy.for_source(failed.engine.base_url)
        if not isinstance(failed, EngineUpstream):
            return None
        if trip:
            self.directory.trip(failed.engine, self.config.failover_cooldown)
        engine = self.directory.acquire_instead(failed.engine)
        if engine is None:
            if not same:
                return None
            self._count_failover()
            return failed, self.policy.for_engine(failed.engine)
        self._count_failover()
        self.directory.release(failed.engine)
        upstream = EngineUpstream(engine, failed.key_type, failed.key, failed.kind)
        return upstream, self.policy.for_engine(engine)

    def _count_failover(self) -> None:
        self.failovers += 1
        FAILOVERS.inc()

    def released(self, channel: Channel) -> None:
        """``channel``'s life is over: its engine slot is free; a lease of ours is given back;
        sessions it could not stop are stopped later."""
        engine = channel.upstream.engine_load
        if engine is not None:
            self.directory.release(engine)
        if (
            self.ownership is not None
            and isinstance(channel.upstream, EngineUpstream)
            and not self._succeeded(channel)
        ):
            self.ownership.release(channel.key, engine)
        for upstream, client, session in channel.left_open:
            self.stop_later(channel.name, upstream, client, session)

    def _succeeded(self, channel: Channel) -> bool:
        """A new channel of the same content runs here already: it keeps the lease."""
        return any(
            other.key == channel.key and other is not channel and not other.stopping
            for other in self._channels()
        )

    def spawn(self, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        if self.nursery is not None:
            self.nursery.start_soon(fn, *args)
