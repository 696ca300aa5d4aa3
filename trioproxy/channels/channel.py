"""A channel: one engine session, its fetch loop, its event sender and its idle watchdog.

``Channel.run`` is the channel's whole life. Its task tree::

    run
    ├─ event sender            (outlives the life scope; bounded by a deadline set at teardown)
    └─ life scope              (cancelled by stop(): DELETE, idle watchdog, shutdown, failure)
       ├─ open session         (shielded, bounded: a session we asked for is always stopped)
       ├─ fetch loop           poller → dispatcher → committer (fetcher.py)
       ├─ idle watchdog
       └─ health check         stat_url and stall detection (health.py)
    teardown (shielded, bounded): method=stop to the engine, stream_ended queued, send side closed
"""

from __future__ import annotations

import enum
import logging
import math
import secrets
from collections.abc import Callable
from typing import Any

import trio

from ..config import Config
from ..errors import BufferTimeout, ChannelFailed, EngineError, ProxyError
from ..hls.playlist import render_media_playlist
from ..hls.variants import Variant
from ..hls.window import Segment, SegmentWindow
from ..upstream.engine import Engine, EngineClient, KeyType, Session
from ..upstream.orchestrator import Orchestrator, ended_payload, started_payload
from ..upstream.resources import ResourceCache
from ..upstream.sources import source_session
from .events import Event, EventKind, EventSender
from .fetcher import Fetcher
from .health import watch_session
from .players import ClientTracker

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
        key_type: KeyType,
        key: str,
        engine: Engine,
        config: Config,
        engines: EngineClient,
        orchestrator: Orchestrator | None,
        on_stop: Callable[[Channel], None] = lambda channel: None,
        on_closed: Callable[[Channel], None] = lambda channel: None,
    ) -> None:
        self.name = name
        self.key_type = key_type
        self.key = key
        self.engine = engine
        self.config = config
        self.incarnation = secrets.token_hex(4)
        self.window = SegmentWindow(config.hls_max_segments)
        self.resources = ResourceCache(2 * config.hls_max_segments + 8)
        """Init sections and keys, fetched once and served by the proxy."""
        self.clients = ClientTracker(config.hls_client_idle_timeout)
        self.session: Session | None = None
        self.stream_id: str | None = None
        self.end_reason: str | None = None
        self.failure: ProxyError | None = None
        self.endlist = False
        self.report_end = True
        """False when the orchestrator ended the stream itself: no ``stream_ended`` from us."""
        self.created_at = trio.current_time()
        self.ready = trio.Event()
        """Set once the first playlist can be answered, or the channel ended: waiters wake."""
        self.closed = trio.Event()
        """Set when nothing of the channel runs any more."""
        self.engines = engines
        self._orchestrator = orchestrator
        self._on_stop = on_stop
        self._on_closed = on_closed
        self._life = trio.CancelScope()
        self._open_scope = trio.CancelScope(shield=True)
        self._hurry_deadline = math.inf
        self._sender: EventSender | None = None
        self._waiters = 0
        self._waiters_left_at = self.created_at
        self._waiters_gone = trio.Event()
        self._state = ChannelState.OPENING
        self.fetcher = Fetcher(self)

    # ---- life -------------------------------------------------------------------------------

    @property
    def state(self) -> ChannelState:
        return self._state

    @property
    def stopping(self) -> bool:
        return self.end_reason is not None

    @property
    def variant(self) -> Variant | None:
        """The variant followed, when the upstream answered a master playlist."""
        return self.fetcher.variant

    def mark_ready(self) -> None:
        """The first playlist can be served: wake every waiting player."""
        if self.ready.is_set():
            return
        self._state = ChannelState.READY
        log.info("channel %s: ready after %.2f s", self.name, trio.current_time() - self.created_at)
        self.ready.set()

    @property
    def stream_established(self) -> bool:
        """The orchestrator accepted this channel's ``stream_started``."""
        return self._sender is not None and self.stream_id in self._sender.established

    def stop(self, reason: str) -> None:
        """Ask the channel to end. Returns at once; the teardown runs in the channel's own task."""
        if self.end_reason is None:
            self.end_reason = reason
            log.info("channel %s: stopping (%s)", self.name, reason)
        if self._state is not ChannelState.CLOSED:
            self._state = ChannelState.STOPPING
        self._life.cancel()
        self.ready.set()
        self._on_stop(self)

    def fail(self, error: ProxyError, reason: str) -> None:
        if self.failure is None and self.end_reason is None:
            self.failure = error
        self.stop(reason)

    def hurry(self, deadline: float) -> None:
        """At process shutdown: finish opening, stopping and event delivery by ``deadline``."""
        self._hurry_deadline = min(self._hurry_deadline, deadline)
        self._open_scope.deadline = min(self._open_scope.deadline, deadline)
        if self._sender is not None:
            self._sender.give_up_by(deadline)

    async def run(self) -> None:
        """The channel's whole life; returns when nothing of it runs any more."""
        try:
            await self._run()
        finally:
            self._state = ChannelState.CLOSED
            self.ready.set()
            self.closed.set()
            self._on_closed(self)
            log.info("channel %s: closed", self.name)

    async def _run(self) -> None:
        send, receive = trio.open_memory_channel[Event](4)
        async with trio.open_nursery() as nursery:
            if self._orchestrator is not None:
                self._sender = EventSender(self._orchestrator, self.name)
                nursery.start_soon(self._sender.run, receive)
            else:
                receive.close()
            with send:
                try:
                    with self._life:
                        await self._live(send)
                except Exception as exc:  # a bug: end this channel only, never its siblings
                    log.exception("channel %s: internal error", self.name)
                    self.fail(ProxyError(f"internal error: {exc!r}"), "internal error")
                finally:
                    await self._teardown(send)

    async def _live(self, send: trio.MemorySendChannel[Event]) -> None:
        self._open_scope.deadline = min(
            self._hurry_deadline, trio.current_time() + self.config.session_timeout
        )
        with self._open_scope:
            try:
                if self.key_type == "url":  # a configured source: no session to open
                    self.session = source_session(self.key)
                else:
                    self.session = await self.engines.open_session(
                        self.engine, self.key_type, self.key
                    )
            except EngineError as exc:
                self.fail(exc, f"engine session failed: {exc.message}")
                return
        if self._open_scope.cancelled_caught:
            error = EngineError(
                f"engine did not open a session in {self.config.session_timeout:g} s"
            )
            self.fail(error, "engine session timed out")
            return
        session = self.session
        assert session is not None
        log.info(
            "channel %s: session %s open on %s",
            self.name,
            session.playback_session_id,
            self.engine.base_url,
        )
        await trio.lowlevel.checkpoint()  # a stop that came while opening takes effect here
        self.stream_id = f"{self.key}|{session.playback_session_id}"
        self._state = ChannelState.BUFFERING
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
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.fetcher.run, session.playback_url)
            nursery.start_soon(self._watchdog)
            nursery.start_soon(self._health, session)

    async def _health(self, session: Session) -> None:
        await watch_session(
            self,
            self.engines,
            session,
            stat_interval=self.config.stat_interval,
            stall_timeout=self.config.stall_timeout,
        )

    async def _teardown(self, send: trio.MemorySendChannel[Event]) -> None:
        """Stop the engine session and queue ``stream_ended``: shielded and bounded."""
        if self.end_reason is None:
            self.end_reason = "ended"
        self._state = ChannelState.STOPPING
        self.ready.set()
        with trio.CancelScope(shield=True):
            if self.session is not None and self.key_type != "url":
                with trio.move_on_at(
                    min(self._hurry_deadline, trio.current_time() + self.config.stop_timeout)
                ):
                    try:
                        await self.engines.stop_session(self.session)
                        log.info("channel %s: engine session stopped", self.name)
                    except EngineError as exc:
                        log.warning("channel %s: engine stop failed: %s", self.name, exc.message)
            if self.stream_id is not None and self._sender is not None and self.report_end:
                self._emit(
                    send,
                    "stream_ended",
                    ended_payload(
                        container_id=self.engine.container_id,
                        stream_id=self.stream_id,
                        content_id=self.key,
                        reason=self.end_reason,
                    ),
                )
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
            # Two events per channel on a channel of four: this never blocks.
            send.send_nowait(Event(kind, self.stream_id, payload))
        except (trio.BrokenResourceError, trio.WouldBlock):
            # The sender is gone: it was cancelled from outside (a hard stop of the process).
            log.warning("channel %s: %s lost: the event sender has stopped", self.name, kind)
            self._sender.dropped += 1
            return
        self._sender.pending += 1

    # ---- players ----------------------------------------------------------------------------

    def touch(self, client: str) -> None:
        self.clients.touch(client, trio.current_time())

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
            raise ChannelFailed(self.failure.message, retry_after=self.config.failure_backoff or 1)
        if not self.ready.is_set():
            raise BufferTimeout(
                f"channel {self.name}: no segments within "
                f"{self.config.hls_buffer_ready_timeout:g} s; retry shortly",
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
        if self.fetcher.serve_whole:
            segments = list(self.window)
        else:
            segments = self.window.latest(self.config.hls_window_size)
        return render_media_playlist(
            segments,
            target_duration=self.window.target_duration,
            segment_uri=segment_uri,
            resource_uri=resource_uri,
            endlist=self.endlist and self._state is not ChannelState.OPENING,
            start_offset=self.config.hls_start_offset or None,
            independent_segments=self.fetcher.independent_segments,
        )

    async def _watchdog(self) -> None:
        """Stop the channel once nobody watched it for the grace period. Waiters are players."""
        grace = self.config.proxy_grace_period
        while True:
            if self._waiters:
                await self._waiters_gone.wait()
                continue
            idle_from = max(self.clients.idle_since(), self._waiters_left_at)
            stop_at = idle_from + grace
            if trio.current_time() >= stop_at:
                self.stop("no players")
                return
            await trio.sleep_until(stop_at)

    # ---- status -----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        now = trio.current_time()
        segments = list(self.window)
        return {
            "channel": self.name,
            "incarnation": self.incarnation,
            "key_type": self.key_type,
            "key": self.key,
            "state": self._state.value,
            "end_reason": self.end_reason,
            "age_seconds": round(now - self.created_at, 3),
            "engine": {"url": self.engine.base_url, "container_id": self.engine.container_id},
            "stream_id": self.stream_id,
            "playback_session_id": self.session.playback_session_id if self.session else None,
            "clients": self.clients.count(now),
            "waiting": self._waiters,
            "buffer": {
                "segments": len(segments),
                "bytes": self.window.total_bytes,
                "first_sequence": segments[0].sequence if segments else None,
                "last_sequence": segments[-1].sequence if segments else None,
                "seconds": round(math.fsum(s.duration for s in segments), 3),
                "gaps": self.window.gaps,
                "target_duration": self.window.target_duration,
            },
            "events": self._sender.snapshot() if self._sender else None,
            "upstream": {
                "variant": None
                if self.variant is None
                else {"uri": self.variant.uri, "bandwidth": self.variant.bandwidth},
                "resources": len(self.resources),
                "ended": self.endlist,
            },
        }
