"""The channel registry: one nursery for every channel, and the map from id to running channel.

The registry picks each channel's upstream (an engine with room for an AceStream id, or the URL
of a source or rendition) and hands it to the channel. Its place in the whole task tree, and who
cancels what: ``trioproxy.service``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import trio

from ..cluster import Leases
from ..config import Config
from ..errors import LoopingStream, NoEngineAvailable
from ..hls.window import MemoryAccount
from ..upstream.engine import EngineClient, KeyType
from ..upstream.liveness import Connect
from ..upstream.orchestrator import Orchestrator
from ..upstream.policy import UpstreamPolicy
from ..upstream.sources import SOURCE_PREFIX, SourceUpstream, rendition_name
from .admission import Admission
from .answers import public_failure
from .backoff import FailureBackoff
from .channel import Channel
from .directory import EngineDirectory
from .facts import facts_of
from .guide import GuideKeeper
from .memory import TRIM_AFTER, MemoryAdmission, give_back
from .per_address import AddressLimits
from .pool import ChannelEngines
from .stops import LaterStops
from .upstreams import EngineUpstream, PendingUpstream, Upstream
from .watcher import StreamWatcher

__all__ = ["Registry"]

log = logging.getLogger(__name__)


class Registry:
    """Starts, finds and stops channels. :meth:`run` owns the nursery every channel runs in.

    The HTTP client is passed in and must outlive :meth:`run` (the caller opens it around it).
    ``connect`` opens the idle connection that watches each engine session's engine
    (``upstream/liveness.py``); without it, the fetch loop alone finds a dead engine.
    """

    def __init__(
        self,
        config: Config,
        http: httpx.AsyncClient,
        *,
        connect: Connect | None = None,
        leases: Leases | None = None,
    ) -> None:
        self.config = config
        static = config.engines
        if not static and config.orchestrator_url is None:
            static = ("http://127.0.0.1:6878",)
        self.orchestrator = (
            Orchestrator(http, config.orchestrator_url, config.api_key, config.orchestrator_api)
            if config.orchestrator_url
            else None
        )
        self.directory = EngineDirectory(
            static=static,
            max_streams_per_engine=config.max_streams_per_engine,
            orchestrator=self.orchestrator,
            refresh_interval=config.engine_refresh_interval,
        )
        self.policy = UpstreamPolicy.from_config(http, config, connect)
        self.admission = Admission(config)
        self.engines = ChannelEngines(
            config, self.directory, self.policy, self.admission, self._all_channels
        )
        """Engines for channels' sessions: picked, replaced, stopped later (``pool.py``)."""
        self.membership = None if leases is None else self.engines.join_cluster(leases)
        """This instance in its cluster; None alone (no ``TRIOPROXY_REDIS_URL``)."""
        self.guide = GuideKeeper(config, http)
        """The channel list's guide (XMLTV), refreshed by a task of :meth:`run`."""
        self.memory = MemoryAdmission(config)
        self.watcher = (
            StreamWatcher(
                self.orchestrator, config.watch_interval, lambda: list(self._channels.values())
            )
            if self.orchestrator is not None
            else None
        )
        self._channels: dict[str, Channel] = {}
        self._closing: set[Channel] = set()
        self.addresses = AddressLimits(config, self._channels.values, lambda: self._closing)
        """Caps per client address; an ``address`` given to ``get_or_start*`` counts there."""
        self.backoff = FailureBackoff(config.failure_backoff)
        self._nursery: trio.Nursery | None = None
        self._shutdown = trio.Event()
        self.started_total = 0
        self.refused: Counter[str] = Counter()
        """New channels refused here: at shutdown, in their failure backoff, looping content
        (the caps count their own refusals)."""

    # ---- lifecycle --------------------------------------------------------------------------

    async def run(
        self, *, task_status: trio.TaskStatus[Registry] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve channels until :meth:`shutdown`, then stop them all; return when they are gone."""
        async with trio.open_nursery() as nursery:
            self._nursery = self.engines.nursery = nursery
            # First: the cached guide is read before anything is served.
            guide_scope: trio.CancelScope = await nursery.start(self.guide.run)
            directory_scope = trio.CancelScope()
            nursery.start_soon(self._run_directory, directory_scope)
            watcher_scope = trio.CancelScope()
            if self.watcher is not None:
                nursery.start_soon(self._run_watcher, watcher_scope)
            membership_scope = trio.CancelScope()
            if self.membership is not None:
                await nursery.start(self._run_membership, membership_scope)
            task_status.started(self)
            await self._shutdown.wait()
            directory_scope.cancel()
            watcher_scope.cancel()
            membership_scope.cancel()
            guide_scope.cancel()
            self.engines.later_stops.give_up()
            deadline = trio.current_time() + self.config.shutdown_timeout
            for channel in [*self._channels.values(), *self._closing]:
                channel.hurry(deadline)
                channel.stop("proxy shutdown")
            # A backstop: whatever a channel still runs past the deadline is cancelled.
            nursery.cancel_scope.deadline = deadline + 1.0
        self._nursery = self.engines.nursery = None

    async def _run_membership(
        self, scope: trio.CancelScope, *, task_status: trio.TaskStatus[None]
    ) -> None:
        assert self.membership is not None
        with scope:
            await self.membership.run(lambda: facts_of(self.channels), task_status=task_status)

    def _all_channels(self) -> list[Channel]:
        return [*self._channels.values(), *self._closing]

    async def _run_directory(self, scope: trio.CancelScope) -> None:
        with scope:
            await self.directory.run()

    async def _run_watcher(self, scope: trio.CancelScope) -> None:
        assert self.watcher is not None
        with scope:
            await self.watcher.run()

    def shutdown(self) -> None:
        self._shutdown.set()

    # ---- channels ---------------------------------------------------------------------------

    def get(self, name: str) -> Channel | None:
        return self._channels.get(name)

    def find(self, name: str, incarnation: str) -> Channel | None:
        """The running or closing channel with this incarnation (segments stay servable)."""
        channel = self._channels.get(name)
        if channel is not None and channel.incarnation == incarnation:
            return channel
        for closing in self._closing:
            if closing.name == name and closing.incarnation == incarnation:
                return closing
        return None

    def get_or_start_source(self, source: str, url: str, *, address: str | None = None) -> Channel:
        """The channel of the configured source ``source``, started now if there is none."""
        name = SOURCE_PREFIX + source
        channel = self._channels.get(name)
        if channel is not None:
            return channel
        with self._reserve(name, address=address) as account:
            return self._start(
                name, SourceUpstream(url), self.policy.for_source(url), account, address=address
            )

    def get_or_start_rendition(
        self, parent: Channel, index: int, *, address: str | None = None
    ) -> Channel | None:
        """The channel of rendition ``index`` of ``parent``'s variant (an alternative audio or
        subtitle playlist), started now if there is none. It sends no events of its own."""
        variant = parent.variant
        if variant is None or not 0 <= index < len(variant.separate_renditions):
            return None
        uri = variant.separate_renditions[index].uri
        assert uri is not None
        name = rendition_name(parent.name, index)
        channel = self._channels.get(name)
        if channel is not None:
            return channel
        with self._reserve(name, address=address) as account:
            # A rendition fetches with its parent's client: it reaches only the parent's hosts.
            return self._start(
                name, SourceUpstream(uri), parent.client, account, events=False, address=address
            )

    def get_or_start(self, key_type: KeyType, key: str, *, address: str | None = None) -> Channel:
        """The channel of AceStream content ``key``, started now on an engine with room if there
        is none. Never waits. ``address`` (the client's, as :mod:`.per_address` counts it) is
        held to the per-address caps."""
        channel = self._channels.get(key)
        if channel is not None:
            return channel
        with self._reserve(key, watched=True, address=address, opens_session=True) as account:
            mode = self.config.upstream_mode
            if self.membership is not None:  # owner or relay: the first session decides
                pending = PendingUpstream(key_type, key, mode)
                client = self.policy.for_source(key)  # replaced when the session is decided
                return self._start(key, pending, client, account, address=address)
            engine = self.engines.acquire()
            if engine is None:
                raise self.admission.refuse_opening()
            try:
                upstream = EngineUpstream(engine, key_type, key, mode)
                client = self.policy.for_engine(engine)
                return self._start(key, upstream, client, account, address=address)
            except BaseException:
                self.directory.release(engine)
                raise

    @property
    def failovers(self) -> int:
        """Failovers of every channel: engine sessions replaced by a new one."""
        return self.engines.failovers

    @property
    def later_stops(self) -> LaterStops:
        return self.engines.later_stops

    @contextmanager
    def _reserve(
        self,
        name: str,
        *,
        watched: bool = False,
        address: str | None = None,
        opens_session: bool = False,
    ) -> Iterator[MemoryAccount]:
        """The memory account of a new channel ``name``, for the block that starts it: closed
        again when the block raises, whatever it raises (the channel that takes it over gives
        it back when its life ends)."""
        account = self._admit(name, watched=watched, address=address, opens_session=opens_session)
        try:
            yield account
        except BaseException:
            account.close()
            raise

    def _admit(
        self,
        name: str,
        *,
        watched: bool,
        address: str | None,
        opens_session: bool,
    ) -> MemoryAccount:
        """Refuse a new channel ``name`` at shutdown, in its failure backoff, content the
        orchestrator lists as looping (``watched``: AceStream content), over the cap, or when
        its reserve does not fit in the memory budget; else its memory account."""
        if self._nursery is None or self._shutdown.is_set():
            self.refused["shutdown"] += 1
            raise NoEngineAvailable("the proxy is shutting down", retry_after=5)
        refusal = self.backoff.refusal(name, trio.current_time())
        if refusal is not None:
            self.refused["failure_backoff"] += 1
            raise refusal
        if watched and self.watcher is not None:
            try:
                self.watcher.check(name)
            except LoopingStream:
                self.refused["looping"] += 1
                raise
        self.admission.check_channel(len(self._channels))
        self.addresses.check_channel(address, opens_session=opens_session)
        return self.memory.admit()

    def _start(
        self,
        name: str,
        upstream: Upstream,
        client: EngineClient,
        account: MemoryAccount,
        *,
        events: bool = True,
        address: str | None = None,
    ) -> Channel:
        """Start a channel on ``upstream``, fetching with ``client``: a view of the upstream
        policy that reaches only that channel's hosts; its bytes are charged to ``account``."""
        assert self._nursery is not None
        channel = Channel(
            name=name,
            upstream=upstream,
            config=self.config,
            client=client,
            orchestrator=self.orchestrator if events else None,
            on_stop=self._forget,
            on_released=self._released,
            events_after=[*self._events_unsettled(upstream.key), *self.engines.gates(upstream)]
            if events
            else (),
            account=account,
            pool=self.engines if isinstance(upstream, EngineUpstream | PendingUpstream) else None,
        )
        self._channels[name] = channel
        self.addresses.started(channel, address)
        self.started_total += 1
        log.info(
            "channel %s: starting on %s", name, upstream.engine.base_url, extra=channel.log_fields
        )
        self._nursery.start_soon(self._run_channel, channel, name=f"channel {name}")
        return channel

    def _events_unsettled(self, key: str) -> list[trio.Event]:
        """Closing channels of content ``key`` whose events are not settled yet: a new channel's
        ``stream_started`` waits for them (an orchestrator keying streams by content would end
        the new stream on the old one's late ``stream_ended``)."""
        return [
            closing.events_settled
            for closing in self._closing
            if closing.key == key and not closing.events_settled.is_set()
        ]

    async def _run_channel(self, channel: Channel) -> None:
        try:
            await channel.run()
        finally:
            self._closing.discard(channel)

    def _released(self, channel: Channel) -> None:
        """``channel``'s life is over: its engine slot and its address's counts are free now
        (its event sender may still run). Sessions it could not stop are stopped later."""
        self._forget(channel)
        self.addresses.forget(channel)
        self.engines.released(channel)
        if self._nursery is None:
            return
        if channel.held_at_end >= TRIM_AFTER:
            # A task of its own: it runs once the channel has let go of its bytes.
            self._nursery.start_soon(give_back)

    def stop_channel(self, name: str, reason: str = "stopped") -> bool:
        """Stop a channel now. Returns at once; False when there is no such running channel."""
        channel = self._channels.get(name)
        if channel is None:
            return False
        channel.stop(reason)
        return True

    def _forget(self, channel: Channel) -> None:
        if self._channels.get(channel.name) is channel:
            del self._channels[channel.name]
            # Back off from the moment the channel fails, not when its teardown ends: a player
            # reloading in between would otherwise open a new engine session at once.
            self._back_off(channel)
        if not channel.closed.is_set():
            self._closing.add(channel)

    def _back_off(self, channel: Channel) -> None:
        if channel.failure is not None:
            self.backoff.record(
                channel.name, channel.failure.status, public_failure(channel), trio.current_time()
            )

    # ---- status -----------------------------------------------------------------------------

    @property
    def channels(self) -> list[Channel]:
        return list(self._channels.values())

    @property
    def closing(self) -> list[Channel]:
        """Channels stopped and still tearing down (their segments stay servable)."""
        return list(self._closing)

    @property
    def task_names(self) -> list[str]:
        """Names of the tasks running in the registry's nursery (``channel <name>`` for each
        channel, running or closing); empty when :meth:`run` is not running."""
        if self._nursery is None:
            return []
        return [task.name for task in self._nursery.child_tasks]

    @property
    def engine_stops_pending(self) -> int:
        """Engine sessions closed channels left open, still to be stopped."""
        return len(self.later_stops)
