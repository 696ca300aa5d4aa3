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
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import trio

from ..config import Config
from ..errors import BufferTimeout, ChannelFailed, OverCapacity, ProxyError, redact
from ..hls.playlist import render_media_playlist
from ..hls.variants import Variant
from ..hls.window import MemoryAccount, Segment, SegmentWindow
from ..observability.logs import bind_log_context
from ..observability.metrics import PlayerKind
from ..upstream.engine import Engine, EngineClient, KeyType, Session, shown
from ..upstream.orchestrator import Orchestrator, ended_payload, started_payload
from ..upstream.resources import ResourceCache
from .events import Event, EventKind, EventSender
from .failover import RECORDS_KEPT, EnginePool, SessionRecord, SwitchBudget, describe_attempts
from .feed import Feed
from .players import ClientTracker
from .session import SessionEnded, UpstreamSession, first_leaf
from .ts import TsStream
from .upstreams import Upstream

__all__ = ["Channel", "ChannelState"]

log = logging.getLogger(__name__)


def _now() -> float:
    return trio.current_time()


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
        events_after: Sequence[trio.Event] = (),
        account: MemoryAccount | None = None,
        pool: EnginePool | None = None,
    ) -> None:
        self.name = name
        self.upstream = upstream
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
        self.stream_id: str | None = None
        self.end_reason: str | None = None
        self.failure: ProxyError | None = None
        self.report_end = True
        """False when the orchestrator ended the stream itself: no ``stream_ended`` from us."""
        self.created_at = trio.current_time()
        self.closed = trio.Event()
        """Set when nothing of the channel runs any more."""
        self.events_settled = trio.Event()
        """Set once this channel's events are delivered or given up (at its sender's deadline
        at the latest): a later channel of the same content holds its ``stream_started`` until
        then (``events_after``)."""
        self._events_after = events_after
        self._client = client
        self._orchestrator = orchestrator
        self._on_stop = on_stop
        self._life = trio.CancelScope()
        self._hurry_deadline = math.inf
        self._sender: EventSender | None = None
        self._upstream_session: UpstreamSession | None = None
        self._waiters = 0
        self._waiters_left_at = self.created_at
        self._waiters_gone = trio.Event()
        self._pool = pool
        self.switches = SwitchBudget(
            config.failover_max_switches, config.failover_window, config.failover_backoff
        )
        """Failovers to a new engine session; ``switches.total`` counts them all."""
        self.sessions: list[SessionRecord] = []
        """This channel's engine sessions, oldest first (the newest :data:`RECORDS_KEPT`)."""
        self.left_behind: list[tuple[Upstream, EngineClient, Session]] = []
        """Sessions of earlier upstreams a failover could not stop: stopped later."""

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
        return self._client

    @property
    def session(self) -> Session | None:
        """The current upstream session, once it is open."""
        return None if self._upstream_session is None else self._upstream_session.session

    @property
    def left_open(self) -> Session | None:
        """The engine session the channel's teardown could not stop, if any."""
        upstream_session = self._upstream_session
        if upstream_session is None or upstream_session.left_open is None:
            return None
        return upstream_session.session

    @property
    def opening(self) -> bool:
        """A session is being asked for: none is open yet, and the channel did not fail or close.

        A channel stopped while its session is being opened still counts: the open is shielded
        and the engine works on it until it answers.
        """
        return self.session is None and not self.closed.is_set() and self.failure is None

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
        return self._sender is not None and self.stream_id in self._sender.established

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
        if self._upstream_session is not None:
            self._upstream_session.hurry(deadline)
        if self._sender is not None:
            self._sender.give_up_by(deadline)

    async def run(self) -> None:
        """The channel's whole life; returns when nothing of it runs any more."""
        # Every line this task and the tasks it starts log names the channel and its engine.
        bind_log_context(**self.log_fields)
        try:
            await self._run()
        finally:
            self.ready.set()
            self.events_settled.set()
            self.ts.close()
            self.closed.set()
            self.window.release()  # its bytes leave the memory budget with it
            log.info("channel %s: closed", self.name)

    async def _run(self) -> None:
        # Two events per engine session: the first session and every switch allowed, plus one
        # spare, so queuing never blocks even while the orchestrator does not answer.
        send, receive = trio.open_memory_channel[Event](2 * (self.config.failover_max_switches + 2))
        async with trio.open_nursery() as nursery:
            if self._orchestrator is not None:
                self._sender = EventSender(
                    self._orchestrator,
                    self.name,
                    after=self._events_after,
                    settled=self.events_settled,
                )
                nursery.start_soon(self._sender.run, receive)
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

    async def _live(self, send: trio.MemorySendChannel[Event]) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watchdog)
            while True:
                failed: SessionEnded | None = None
                try:
                    await self._session(send)
                except Exception as exc:
                    # A session's failure may come with collateral damage from its other tasks
                    # (a queue broken under them): the failure decides.
                    ended = exc.split(SessionEnded)[0] if isinstance(exc, ExceptionGroup) else None
                    if ended is None:
                        raise
                    failed = first_leaf(ended)
                if failed is None:
                    return  # the session ended on its own (it never does today): players stay
                await self._switch(send, failed)

    async def _session(self, send: trio.MemorySendChannel[Event]) -> None:
        """One engine session: open it, announce it, run it until it fails or is cancelled."""
        upstream = self.upstream
        unlisted = None
        if self._pool is not None and upstream.engine_load is not None:
            unlisted = partial(self._pool.wait_unlisted, upstream.engine_load)
        upstream_session = UpstreamSession(
            name=self.name,
            upstream=upstream,
            client=self._client,
            feed=self.feed,
            config=self.config,
            hurry_deadline=self._hurry_deadline,
            unlisted=unlisted,
        )
        self._upstream_session = upstream_session
        record = SessionRecord(upstream.engine.base_url, upstream.engine.container_id, _now())
        self.sessions.append(record)
        del self.sessions[:-RECORDS_KEPT]
        try:
            async with trio.open_nursery() as nursery:
                session = await nursery.start(upstream_session.run)
                record.opened_at = _now()
                record.playback_session_id = session.playback_session_id
                self.stream_id = f"{self.key}|{session.playback_session_id}"
                self._emit(
                    send,
                    "stream_started",
                    started_payload(
                        engine=self.engine,
                        key_type=self.key_type,
                        key=self.key,
                        session=session,
                        stream_id=self.stream_id,
                    ),
                )
        except* SessionEnded as group:
            record.reason = first_leaf(group).reason
            raise
        finally:
            if record.ended_at is None:
                record.ended_at = _now()
                record.reason = record.reason or self.end_reason or "ended"

    async def _switch(self, send: trio.MemorySendChannel[Event], failed: SessionEnded) -> None:
        """The error boundary's decision on a failed session: a new one, or the end (raises)."""
        now = _now()
        upstream = self.upstream
        replacement = None
        if (
            self._pool is not None
            and upstream.engine_load is not None
            and failed.engine_failed
            and self.switches.allowed(now)
        ):
            # A channel that never played tries other engines only: the same engine again
            # would keep its first player waiting on what already failed.
            played = self.window.next_sequence > 0
            replacement = self._pool.replace(upstream, same=played)
        if replacement is None:
            if len(self.sessions) > 1:
                attempts = describe_attempts(self.sessions)
                reason = f"{failed.reason} (after {len(self.sessions)} engine sessions: {attempts})"
                raise SessionEnded(reason, failed.error)
            raise failed
        # The old session is over: its stream ends in the orchestrator's books before the new
        # one starts (the sender posts the queue in order).
        self._end_stream(send, f"failover: {failed.reason}")
        upstream_session = self._upstream_session
        if upstream_session is not None and upstream_session.left_open is not None:
            assert upstream_session.session is not None
            self.left_behind.append((upstream, self._client, upstream_session.session))
        self._upstream_session = None
        delay = self.switches.delay(now)
        self.switches.record(now)
        self.upstream, self._client = replacement
        log.warning(
            "channel %s: session on %s failed (%s); switch %d to %s in %g s",
            self.name,
            upstream.engine.base_url,
            failed.reason,
            self.switches.total,
            self.upstream.engine.base_url,
            delay,
        )
        # Players keep the window; the next session's first segment comes after a discontinuity.
        self.window.mark_gap()
        if delay > 0:
            await trio.sleep(delay)

    def _end_stream(self, send: trio.MemorySendChannel[Event], reason: str) -> None:
        """Queue ``stream_ended`` for the current engine session's stream, once."""
        if self.stream_id is not None and self._sender is not None and self.report_end:
            self._emit(
                send,
                "stream_ended",
                ended_payload(
                    container_id=self.engine.container_id,
                    stream_id=self.stream_id,
                    content_id=self.key,
                    reason=reason,
                ),
            )
        self.stream_id = None

    def _teardown(self, send: trio.MemorySendChannel[Event]) -> None:
        """Queue ``stream_ended`` (the session stopped its engine session on its way out)."""
        if self.end_reason is None:
            self.end_reason = "ended"
        self.ready.set()
        stream_id = self.stream_id
        self._end_stream(send, self.end_reason)
        self.stream_id = stream_id  # the status keeps showing the last stream
        if self._sender is not None:
            self._sender.give_up_by(
                min(self._hurry_deadline, trio.current_time() + self.config.event_drain_timeout)
            )

    def _emit(
        self, send: trio.MemorySendChannel[Event], kind: EventKind, payload: dict[str, Any]
    ) -> None:
        if self._sender is None or self.stream_id is None:
            return
        try:
            # Sized for two events per engine session the switch limit allows: never blocks.
            send.send_nowait(Event(kind, self.stream_id, payload))
        except (trio.BrokenResourceError, trio.WouldBlock):
            # The sender is gone: it was cancelled from outside (a hard stop of the process).
            log.warning("channel %s: %s lost: the event sender has stopped", self.name, kind)
            self._sender.dropped += 1
            return
        self._sender.pending += 1

    # ---- players ----------------------------------------------------------------------------

    def touch(self, client: str, address: str | None = None) -> None:
        self.clients.touch(client, trio.current_time(), address)

    @property
    def waiting(self) -> int:
        """Requests waiting for the first segments (each also counted as a player)."""
        return self._waiters

    @property
    def events_pending(self) -> int:
        """Events queued for the orchestrator and not delivered yet."""
        return 0 if self._sender is None else self._sender.pending

    def player_count(self, now: float) -> int:
        """Players of both kinds: HLS players seen lately and TS players connected."""
        return self.clients.count(now) + len(self.ts)

    def player_counts(self, now: float) -> dict[PlayerKind, int]:
        """Players present now, by kind (what ``trioproxy_players`` sums)."""
        return {"hls": self.clients.count(now), "ts": len(self.ts)}

    async def wait_ready(self) -> None:
        """Wait, counted as a player, until the first playlist can be served or the channel ends.

        The caller bounds the wait (``HLS_BUFFER_READY_TIMEOUT``), then calls
        :meth:`check_servable`.
        """
        self._waiters += 1
        if self._waiters == 1:
            self._waiters_gone = trio.Event()
        try:
            await self.ready.wait()
        finally:
            self._waiters -= 1
            if self._waiters == 0:
                self._waiters_left_at = trio.current_time()
                self._waiters_gone.set()

    def check_servable(self) -> None:
        if self.failure is not None:
            # Refused for memory (503), not failed upstream (502).
            error = OverCapacity if self.failure.status == 503 else ChannelFailed
            raise error(self.public_failure(), retry_after=self.config.failure_backoff or 1)
        if not self.ready.is_set():
            last = self.feed.last_error
            why = f" (last upstream error: {redact(last, *self._session_ids())})" if last else ""
            raise BufferTimeout(
                f"channel {self.name}: no segments within "
                f"{self.config.hls_buffer_ready_timeout:g} s{why}; retry shortly",
                retry_after=5,
            )
        if len(self.window) == 0:
            raise BufferTimeout(f"channel {self.name} has ended", retry_after=1)

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

    async def _watchdog(self) -> None:
        """Stop the channel once nobody watched it for the grace period. Waiters and connected
        TS players are players."""
        grace = self.config.proxy_grace_period
        while True:
            if self._waiters:
                await self._waiters_gone.wait()
                continue
            if len(self.ts):
                await self.ts.wait_gone()
                continue
            idle_from = max(self.clients.idle_since(), self._waiters_left_at, self.ts.left_at)
            stop_at = idle_from + grace
            if trio.current_time() >= stop_at:
                self.stop("no players")
                return
            await trio.sleep_until(stop_at)

    # ---- status -----------------------------------------------------------------------------

    def public_failure(self) -> str:
        """What players are told of the failure: no engine URLs, no session id (the log has
        the whole message)."""
        if self.failure is None:
            return ""
        return redact(self.failure.message, *self._session_ids())

    def _session_ids(self) -> list[str]:
        return [self.session.playback_session_id] if self.session is not None else []

    def snapshot(self, *, detail: bool = True) -> dict[str, Any]:
        """The channel as ``/proxy/status`` shows it. Without ``detail`` (a caller without the
        key), no ``stream_id`` or ``playback_session_id`` (with them anyone could stop the
        session through the engine's own API), and the end reason without URLs."""
        now = trio.current_time()
        segments = list(self.window)
        session: dict[str, Any] = {}
        end_reason = self.end_reason
        if detail:
            session = {
                "stream_id": self.stream_id,
                "playback_session_id": self.session.playback_session_id if self.session else None,
            }
        elif end_reason is not None:
            end_reason = redact(end_reason, *self._session_ids())
        return {
            "channel": self.name,
            "incarnation": self.incarnation,
            "key_type": self.key_type,
            "key": self.key,
            "state": self.state.value,
            "end_reason": end_reason,
            "age_seconds": round(now - self.created_at, 3),
            "engine": {"url": self.engine.base_url, "container_id": self.engine.container_id},
            **session,
            "clients": self.clients.count(now),
            "waiting": self._waiters,
            "ts": self.ts.snapshot(),
            "buffer": {
                "segments": len(segments),
                "bytes": self.window.total_bytes,
                "first_sequence": segments[0].sequence if segments else None,
                "last_sequence": segments[-1].sequence if segments else None,
                "seconds": round(math.fsum(s.duration for s in segments), 3),
                "gaps": self.window.gaps,
                "dropped_for_memory": self.window.dropped_for_budget,
                "target_duration": self.window.target_duration,
            },
            "events": self._sender.snapshot() if self._sender else None,
            "engine_stats": None
            if self.feed.engine_stat is None
            else self.feed.engine_stat.as_dict(now),
            "sessions": [record.snapshot(detail=detail, now=now) for record in self.sessions],
            "failovers": self.switches.total,
            "upstream": {
                "variant": None
                if self.variant is None
                else {"uri": self.variant.uri, "bandwidth": self.variant.bandwidth},
                "resources": len(self.resources),
                "ended": self.endlist,
            },
        }
