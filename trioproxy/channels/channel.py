"""A channel: what its players see, and the upstream session that fills it.

The channel owns the segment window and resources (its :class:`~trioproxy.channels.feed.Feed`),
its players, its event sender, its incarnation and URL. Its upstream session
(:mod:`trioproxy.channels.session`) is a child it starts and could replace; the session's
failures reach the channel's one error boundary in :meth:`Channel.run` as exceptions. Where this
sits in the whole task tree, and who cancels what: ``trioproxy.service``.
"""

from __future__ import annotations

import enum
import logging
import math
import secrets
from collections.abc import Callable, Hashable, Sequence

import trio

from ..config import Config
from ..errors import ProxyError
from ..hls.playlist import render_media_playlist
from ..hls.variants import Variant
from ..hls.window import MemoryAccount, Segment, SegmentWindow
from ..observability.logs import bind_log_context
from ..observability.metrics import PlayerKind
from ..upstream.engine import Engine, EngineClient, KeyType, Session, shown
from ..upstream.orchestrator import Orchestrator
from ..upstream.resources import ResourceCache
from .audience import Audience
from .events import Event, EventSender
from .failover import EnginePool, SessionLoop, SessionRecord, SwitchBudget
from .feed import Feed
from .players import ClientTracker
from .session import SessionEnded, first_leaf
from .ts import TsStream
from .upstreams import Upstream

__all__ = ["Channel", "ChannelState"]

log = logging.getLogger(__name__)


class ChannelState(enum.Enum):
    OPENING = "opening"
    BUFFERING = "buffering"
    READY = "ready"
    STOPPING = "stopping"
    CLOSED = "closed"


class Channel:
    def __init__(
        self,
        *,
        name: str,
        upstream: Upstream,
        config: Config,
        client: EngineClient,
        orchestrator: Orchestrator | None,
        on_stop: Callable[[Channel], None] = lambda channel: None,
        on_released: Callable[[Channel], None] = lambda channel: None,
        events_after: Sequence[trio.Event] = (),
        account: MemoryAccount | None = None,
        pool: EnginePool | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.incarnation = secrets.token_hex(16)  # 128 bits: media URLs are unguessable
        self.feed = Feed(
            # Under memory pressure the window drops what players are not served any more.
            SegmentWindow(config.hls_max_segments, account=account, keep=config.hls_window_size),
            ResourceCache(2 * config.hls_max_segments + 8, account),
        )
        self.clients = ClientTracker(config.hls_client_idle_timeout)
        self.ts = TsStream(self.feed.window, config.ts_max_lag)
        """The channel as one continuous MPEG-TS stream, and its TS players."""
        self.feed.on_append = self.ts.publish
        self.feed.on_live = self.ts.set_live
        self.feed.on_packets = self.ts.packets
        self.audience = Audience(self.clients, self.ts)
        self.end_reason: str | None = None
        self.failure: ProxyError | None = None
        self.created_at = trio.current_time()
        self.released = False
        """The channel's life is over (its upstream session stopped, its window given back):
        only its event sender may still run."""
        self.held_at_end = 0
        """Bytes its window held when its life ended."""
        self.closed = trio.Event()
        """Set when nothing of the channel runs any more."""
        self.events_settled = trio.Event()
        """Set once this channel's events are delivered or given up (at its sender's deadline
        at the latest): a later channel of the same content holds its ``stream_started`` until
        then (``events_after``)."""
        self.line = SessionLoop(
            name=name,
            upstream=upstream,
            client=client,
            config=config,
            feed=self.feed,
            pool=pool,
            end_reason=lambda: self.end_reason,
        )
        """The channel's engine sessions, one after another (failover)."""
        self._events_after = events_after
        self._orchestrator = orchestrator
        self._on_stop = on_stop
        self._on_released = on_released
        self._life = trio.CancelScope()
        self._hurry_deadline = math.inf

    # ---- what players see -------------------------------------------------------------------

    @property
    def window(self) -> SegmentWindow:
        return self.feed.window

    @property
    def resources(self) -> ResourceCache:
        """Init sections and keys, fetched once and served by the proxy."""
        return self.feed.resources

    @property
    def ready(self) -> trio.Event:
        """Set once the first playlist can be answered, or the channel ended: waiters wake."""
        return self.feed.ready

    @property
    def variant(self) -> Variant | None:
        """The variant followed, when the upstream answered a master playlist."""
        return self.feed.variant

    @property
    def endlist(self) -> bool:
        """The upstream's playlist ended and every segment it listed is in the window."""
        return self.feed.ended.is_set()

    # ---- the upstream -----------------------------------------------------------------------

    @property
    def upstream(self) -> Upstream:
        """The current session's upstream (a failover moves it to another engine)."""
        return self.line.upstream

    @property
    def stream_id(self) -> str | None:
        """The current engine session's stream, as the orchestrator books it."""
        return self.line.stream_id

    @property
    def report_end(self) -> bool:
        """False when the orchestrator ended the stream itself: no ``stream_ended`` from us."""
        return self.line.report_end

    @report_end.setter
    def report_end(self, value: bool) -> None:
        self.line.report_end = value

    @property
    def switches(self) -> SwitchBudget:
        return self.line.switches

    @property
    def sessions(self) -> list[SessionRecord]:
        """This channel's engine sessions, oldest first."""
        return self.line.records

    @property
    def key_type(self) -> KeyType:
        return self.upstream.key_type

    @property
    def key(self) -> str:
        return self.upstream.key

    @property
    def engine(self) -> Engine:
        return self.upstream.engine

    @property
    def client(self) -> EngineClient:
        """What the channel fetches with: reaches only its own upstream's hosts."""
        return self.line.client

    @property
    def session(self) -> Session | None:
        """The current upstream session, once it is open."""
        return self.line.session

    @property
    def left_open(self) -> list[tuple[Upstream, EngineClient, Session]]:
        """Engine sessions the channel could not stop (its last one, at its teardown; earlier
        ones, at their failover), each with its upstream and client: stopped later."""
        left = list(self.line.left_behind)
        current = self.line.current
        if current is not None and current.left_open is not None and current.session is not None:
            left.append((self.upstream, self.client, current.session))
        return left

    @property
    def opening(self) -> bool:
        """A session is being asked for: none is open yet, and the channel did not fail or close.

        A channel stopped while its session is being opened still counts: the open is shielded
        and the engine works on it until it answers.
        """
        return self.session is None and not self.released and self.failure is None

    # ---- life -------------------------------------------------------------------------------

    @property
    def state(self) -> ChannelState:
        if self.closed.is_set():
            return ChannelState.CLOSED
        if self.stopping:
            return ChannelState.STOPPING
        if self.ready.is_set():
            return ChannelState.READY
        if self.session is not None:
            return ChannelState.BUFFERING
        return ChannelState.OPENING

    @property
    def stopping(self) -> bool:
        return self.end_reason is not None

    @property
    def stream_established(self) -> bool:
        """The orchestrator accepted this channel's ``stream_started``."""
        return self.line.sender is not None and self.stream_id in self.line.sender.established

    @property
    def log_fields(self) -> dict[str, str]:
        """``extra=`` for a line about this channel logged outside its own tasks."""
        return {"channel": self.name, "engine": shown(self.engine.base_url)}

    def stop(self, reason: str) -> None:
        """Ask the channel to end. Returns at once; the teardown runs in the channel's own task."""
        if self.end_reason is None:
            self.end_reason = reason
            log.info("channel %s: stopping (%s)", self.name, reason, extra=self.log_fields)
        self._life.cancel()
        self.ready.set()
        self.ts.close()
        self._on_stop(self)

    def fail(self, error: ProxyError, reason: str) -> None:
        """Stop with a failure: waiting players get ``error``, the id is refused for a while."""
        if self.failure is None and self.end_reason is None:
            self.failure = error
        self.stop(reason)

    def hurry(self, deadline: float) -> None:
        """At process shutdown: finish opening, stopping and event delivery by ``deadline``."""
        self._hurry_deadline = min(self._hurry_deadline, deadline)
        self.line.hurry(deadline)
        if self.line.sender is not None:
            self.line.sender.give_up_by(deadline)

    async def run(self) -> None:
        """The channel's whole life; returns when nothing of it runs any more."""
        # Every line this task and the tasks it starts log names the channel and its engine.
        bind_log_context(**self.log_fields)
        try:
            await self._run()
        finally:
            self._release()
            self.events_settled.set()
            self.closed.set()
            log.info("channel %s: closed", self.name)

    async def _run(self) -> None:
        # Two events per engine session: the first session and every switch allowed, plus one
        # spare, so queuing never blocks even while the orchestrator does not answer.
        send, receive = trio.open_memory_channel[Event](2 * (self.config.failover_max_switches + 2))
        async with trio.open_nursery() as nursery:
            if self._orchestrator is not None:
                sender = self.line.sender = EventSender(
                    self._orchestrator,
                    self.name,
                    after=self._events_after,
                    settled=self.events_settled,
                )
                nursery.start_soon(sender.run, receive)
            else:
                receive.close()
            with send:
                # The channel's one error boundary: whatever ends its upstream session ends here.
                try:
                    with self._life:
                        await self._live(send)
                except* SessionEnded as group:
                    ended = first_leaf(group)
                    self.fail(ended.error, ended.reason)
                except* Exception as group:  # a bug: end this channel only, never its siblings
                    log.exception("channel %s: internal error", self.name)
                    self.fail(
                        ProxyError(f"internal error: {first_leaf(group)!r}"), "internal error"
                    )
                finally:
                    self._teardown(send)
                    self._release()

    async def _live(self, send: trio.MemorySendChannel[Event]) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.audience.watch, self.config.proxy_grace_period, self.stop)
            nursery.start_soon(self.ts.run)
            await self.line.run(send)

    def _release(self) -> None:
        """The end of the channel's life: its window and the engine slot, address counts and
        reserve its owner gave it are free now, not once its events are delivered (that may
        take ``TRIOPROXY_EVENT_DRAIN_TIMEOUT`` while the orchestrator is down). Runs once."""
        if self.released:
            return
        self.released = True
        self.ready.set()
        self.ts.close()
        self.held_at_end = self.window.total_bytes
        self.window.release()  # its bytes leave the memory budget with it
        self._on_released(self)

    def _teardown(self, send: trio.MemorySendChannel[Event]) -> None:
        """Queue ``stream_ended`` (the session stopped its engine session on its way out)."""
        if self.end_reason is None:
            self.end_reason = "ended"
        self.ready.set()
        stream_id = self.line.stream_id
        self.line.end_stream(send, self.end_reason)
        self.line.stream_id = stream_id  # the status keeps showing the last stream
        if self.line.sender is not None:
            self.line.sender.give_up_by(
                min(self._hurry_deadline, trio.current_time() + self.config.event_drain_timeout)
            )

    # ---- players ----------------------------------------------------------------------------

    def touch(self, client: str, address: str | None = None) -> None:
        self.clients.touch(client, trio.current_time(), address)

    @property
    def waiting(self) -> int:
        """Requests waiting for the first segments (each also counted as a player)."""
        return self.audience.waiting

    @property
    def events_pending(self) -> int:
        """Events queued for the orchestrator and not delivered yet."""
        return 0 if self.line.sender is None else self.line.sender.pending

    def events_snapshot(self) -> dict[str, int] | None:
        return None if self.line.sender is None else self.line.sender.snapshot()

    def player_count(self, now: float) -> int:
        """Players of both kinds: HLS players seen lately and TS players connected."""
        return self.audience.count(now)

    def player_counts(self, now: float) -> dict[PlayerKind, int]:
        """Players present now, by kind (what ``trioproxy_players`` sums)."""
        return self.audience.counts(now)

    async def wait_ready(self) -> None:
        """Wait, counted as a player, until the first playlist can be served or the channel ends.

        The caller bounds the wait (``HLS_BUFFER_READY_TIMEOUT``), then calls
        :meth:`check_servable`.
        """
        await self.audience.wait(self.ready)

    def playlist(self, variant: Hashable, render: Callable[[], str]) -> bytes:
        """Our playlist for URL ``variant``: ``render()`` (:meth:`render_playlist`) once per
        change of the window, the same ``bytes`` for every request in between."""
        return self.feed.rendered.get(self.feed.playlist_state, variant, render)

    def render_playlist(
        self,
        segment_uri: Callable[[Segment], str],
        resource_uri: Callable[[int], str] = lambda number: f"r/{number}",
    ) -> str:
        """Our playlist: the newest segments, or all of finished content."""
        if self.feed.serve_whole:
            segments = list(self.window)
        else:
            segments = self.window.latest(self.config.hls_window_size)
        return render_media_playlist(
            segments,
            target_duration=self.window.target_duration,
            segment_uri=segment_uri,
            resource_uri=resource_uri,
            endlist=self.endlist,
            start_offset=self.config.hls_start_offset or None,
            independent_segments=self.feed.independent_segments,
        )
