"""Failover: a channel outlives its engine session, within bounds.

When a channel's upstream session fails on the engine's side (it could not be opened, its
playlist kept failing or hanging, it stalled, the engine ended it, the engine left the
orchestrator's list), the channel asks an :class:`EnginePool` for a new engine and opens a new
session there, spliced into the same window after a discontinuity. :class:`SessionLoop` runs a
channel's sessions one after another.

Breakers are for engines, not for content; each failure says which it is (``SessionEnded``'s
``engine_failed``, ``content_failed``). An engine failure (refused or lost connections, 5xx or
garbage, no answer, a session it no longer knows) moves the channel to another engine and opens
the failed one's breaker. A content failure (the engine answered and has nothing: it refused
the open, or the session stalled while the engine kept answering; a dead id or torrent) opens
no breaker; as P2P content may still play elsewhere, the channel gets one more session (on
another engine, or once it played the same one when no other has room), and a second content
failure within ``TRIOPROXY_FAILOVER_WINDOW`` ends it: a dead id costs at most two sessions, and
then ``TRIOPROXY_FAILURE_BACKOFF`` refuses it. Both kinds count in the :class:`SwitchBudget`.

The parts that decide are plain data:

- :class:`SessionRecord`: one engine session of a channel (engine, opened, ended, why), as the
  status page shows it and as the channel's end reason names it;
- :class:`SwitchBudget`: at most ``TRIOPROXY_FAILOVER_MAX_SWITCHES`` switches within
  ``TRIOPROXY_FAILOVER_WINDOW`` seconds, the first at once and each further one after a doubling
  pause (``TRIOPROXY_FAILOVER_BACKOFF``); past that the channel ends;
- :class:`EnginePool`: what a channel needs of its owner to switch (the registry implements it):
  a new engine with its own client, the engine load moved, the failed engine's breaker opened
  (when the engine failed).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import trio

from ..config import Config
from ..errors import ProxyError
from ..upstream.engine import EngineClient, Session
from ..upstream.orchestrator import ended_payload, started_payload, stream_id
from .events import Event, EventKind, EventSender
from .feed import Feed
from .ownership import Prepared, Watch
from .session import SessionEnded, UpstreamSession, first_leaf
from .switches import BACKOFF_CAP, SwitchBudget
from .upstreams import RelayUpstream, Upstream

__all__ = [
    "BACKOFF_CAP",
    "EnginePool",
    "SessionLoop",
    "SessionRecord",
    "SwitchBudget",
    "describe_attempts",
]

log = logging.getLogger(__name__)


def _now() -> float:
    return trio.current_time()


RECORDS_KEPT = 16
"""Sessions a channel remembers for its status (the newest)."""
CONTENT_SWITCHES = 1
"""Switches after a content failure within ``TRIOPROXY_FAILOVER_WINDOW``: one other engine is
tried, then the content is given up."""


class EnginePool(Protocol):
    """Engines for a channel's next session, as the registry hands them out."""

    def replace(
        self, failed: Upstream, *, same: bool, trip: bool
    ) -> tuple[Upstream, EngineClient] | None:
        """The upstream (and the client reaching only it) for the next session after ``failed``
        failed: another engine with room when there is one, else (``same``) ``failed`` again,
        else None. With ``trip`` (the engine failed, not the content) opens the failed
        engine's breaker; moves the engine load to the new one."""
        ...

    async def prepare(self, name: str, upstream: Upstream, client: EngineClient) -> Prepared:
        """The next session's upstream (the cluster's decision: ``ownership.py``), as is
        without a cluster."""
        ...

    def watches(self, upstream: Upstream) -> list[Watch]:
        """What runs beside a session on ``upstream`` and may end it (the engine left the
        list, the cluster lease lost)."""
        ...


@dataclass(eq=False, slots=True)
class SessionRecord:
    """One engine session of a channel."""

    engine: str
    container_id: str | None
    started_at: float
    """When the channel asked for it."""
    opened_at: float | None = None
    ended_at: float | None = None
    reason: str | None = None
    playback_session_id: str | None = None

    def snapshot(self, *, now: float) -> dict[str, Any]:
        """The whole record, session id included (``channels.public`` says what is public)."""

        def ago(at: float | None) -> float | None:
            return None if at is None else round(now - at, 3)

        return {
            "engine": self.engine,
            "container_id": self.container_id,
            "opened": self.opened_at is not None,
            "opened_seconds_ago": ago(self.opened_at),
            "ended_seconds_ago": ago(self.ended_at),
            "ended": self.ended_at is not None,
            "reason": self.reason,
            "playback_session_id": self.playback_session_id,
        }


def describe_attempts(records: list[SessionRecord]) -> str:
    """Every session named with why it ended: ``1) http://a: reason; 2) ...``."""
    return "; ".join(
        f"{number}) {record.engine}: {record.reason or 'running'}"
        for number, record in enumerate(records, 1)
    )


class SessionLoop:
    """A channel's engine sessions, one after another.

    :meth:`run` opens a session (an :class:`~trioproxy.channels.session.UpstreamSession`),
    announces it (``stream_started``), and runs it until it fails or is cancelled. A session
    that failed on the engine's side is replaced while the :class:`SwitchBudget` allows and the
    pool has an engine: ``stream_ended`` (``failover: …``) for the old stream is queued before
    the new one's ``stream_started``, and the window continues after a discontinuity. Otherwise
    the failure leaves :meth:`run` as one :class:`SessionEnded`, naming every attempt.
    """

    def __init__(
        self,
        *,
        name: str,
        upstream: Upstream,
        client: EngineClient,
        config: Config,
        feed: Feed,
        pool: EnginePool | None,
        end_reason: Callable[[], str | None],
    ) -> None:
        self.name = name
        self.upstream = upstream
        self.client = client
        """What the current session fetches with: reaches only its own upstream's hosts."""
        self.current: UpstreamSession | None = None
        self.stream_id: str | None = None
        self.report_end = True
        """False when the orchestrator ended the stream itself: no ``stream_ended`` from us."""
        self.sender: EventSender | None = None
        self.hurry_deadline = math.inf
        self.switches = SwitchBudget(
            config.failover_max_switches, config.failover_window, config.failover_backoff
        )
        """Failovers to a new engine session; ``switches.total`` counts them all."""
        self.content_switches = SwitchBudget(CONTENT_SWITCHES, config.failover_window, 0.0)
        """The switches among them after a content failure (see the module)."""
        self.records: list[SessionRecord] = []
        """The engine sessions, oldest first (the newest :data:`RECORDS_KEPT`)."""
        self.left_behind: list[tuple[Upstream, EngineClient, Session]] = []
        """Sessions of earlier upstreams a failover could not stop: stopped later."""
        self._config = config
        self._feed = feed
        self._pool = pool
        self._end_reason = end_reason
        self._stopping: set[UpstreamSession] = set()
        """Failed sessions being stopped beside their successor's open."""

    @property
    def session(self) -> Session | None:
        """The current upstream session, once it is open."""
        return None if self.current is None else self.current.session

    def hurry(self, deadline: float) -> None:
        self.hurry_deadline = min(self.hurry_deadline, deadline)
        for upstream_session in (self.current, *self._stopping):
            if upstream_session is not None:
                upstream_session.hurry(deadline)

    async def run(self, send: trio.MemorySendChannel[Event]) -> None:
        """Sessions until one fails for good (raises :class:`SessionEnded`) or cancelled.

        A failed session is stopped beside the next one's open (in ``stops``), so a dead or
        hanging engine does not hold up the switch; the last one is stopped before this returns,
        whatever ends it: a failure, a cancellation, or both at once (one group).
        """
        async with trio.open_nursery() as stops:
            try:
                while (failed := await self._until_failed(send)) is not None:
                    await self._switch(send, failed, stops)
                # The session ended on its own (it never does today): players stay.
            finally:
                # A failed session does not stop itself: a stop that arrives together with its
                # failure (one group, holding Cancelled) must not leave it open.
                await self._stop_current()

    async def _until_failed(self, send: trio.MemorySendChannel[Event]) -> SessionEnded | None:
        """Run one session: its failure, or None when it ended on its own."""
        try:
            await self._session(send)
        except Exception as exc:
            # A session's failure may come with collateral damage from its other tasks (a queue
            # broken under them): the failure decides.
            ended = exc.split(SessionEnded)[0] if isinstance(exc, ExceptionGroup) else None
            if ended is None:
                raise
            return first_leaf(ended)
        return None

    async def _stop_current(self) -> None:
        if self.current is not None:
            await self.current.stop()

    async def _stop_behind(
        self, upstream_session: UpstreamSession, upstream: Upstream, client: EngineClient
    ) -> None:
        """Stop a failed session while its successor opens; one left open is stopped later."""
        self._stopping.add(upstream_session)
        try:
            await upstream_session.stop()
        finally:
            self._stopping.discard(upstream_session)
        if upstream_session.left_open is not None and upstream_session.session is not None:
            self.left_behind.append((upstream, client, upstream_session.session))

    async def _session(self, send: trio.MemorySendChannel[Event]) -> None:
        """One engine session: open it, announce it, run it until it fails or is cancelled."""
        if self._pool is not None:
            await self._prepare(send, self._pool)
        upstream = self.upstream
        current = UpstreamSession(
            name=self.name,
            upstream=upstream,
            client=self.client,
            feed=self._feed,
            config=self._config,
            hurry_deadline=self.hurry_deadline,
            watches=self._pool.watches(upstream) if self._pool is not None else [],
        )
        self.current = current
        record = SessionRecord(upstream.engine.base_url, upstream.engine.container_id, _now())
        self.records.append(record)
        del self.records[:-RECORDS_KEPT]
        try:
            async with trio.open_nursery() as nursery:
                session = await nursery.start(current.run)
                record.opened_at = _now()
                record.playback_session_id = session.playback_session_id
                if isinstance(upstream, RelayUpstream):
                    return  # the owner's stream: its events are the owner's
                self.stream_id = stream_id(upstream.key, session)
                self._emit(
                    send,
                    "stream_started",
                    started_payload(
                        engine=upstream.engine,
                        key_type=upstream.key_type,
                        key=upstream.key,
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
                record.reason = record.reason or self._end_reason() or "ended"

    async def _prepare(self, send: trio.MemorySendChannel[Event], pool: EnginePool) -> None:
        """The next session's upstream, as the pool decides it; a lapsed owner's stream (a
        takeover) ends in the orchestrator's books before ours starts."""
        try:
            prepared = await pool.prepare(self.name, self.upstream, self.client)
        except ProxyError as error:
            raise SessionEnded(error.message, error) from error
        self.upstream, self.client = prepared.upstream, prepared.client
        inherited = prepared.inherited
        if inherited is not None and isinstance(inherited.get("stream_id"), str):
            self.stream_id = inherited["stream_id"]
            if self.sender is not None:  # the orchestrator accepted it from the last owner
                self.sender.established.add(self.stream_id)
            self.end_stream(send, "takeover: its instance is gone", inherited.get("container_id"))

    async def _switch(
        self, send: trio.MemorySendChannel[Event], failed: SessionEnded, stops: trio.Nursery
    ) -> None:
        """The decision on a failed session: a new one, or the end (raises)."""
        now = _now()
        upstream = self.upstream
        replacement = None
        if self._pool is not None and self._may_switch(failed, now):
            # A channel that never played tries other engines only: the same engine again
            # would keep its first player waiting on what already failed.
            played = self._feed.window.next_sequence > 0
            replacement = self._pool.replace(upstream, same=played, trip=failed.engine_failed)
        if replacement is None:
            await self._stop_current()  # stopped before its stream_ended is queued
            if len(self.records) > 1:
                attempts = describe_attempts(self.records)
                reason = f"{failed.reason} (after {len(self.records)} engine sessions: {attempts})"
                raise SessionEnded(reason, failed.error)
            raise failed
        # The old session is over: its stream ends in the orchestrator's books before the new
        # one starts (the sender posts the queue in order).
        self.end_stream(send, f"failover: {failed.reason}")
        if self.current is not None:
            stops.start_soon(self._stop_behind, self.current, upstream, self.client)
        self.current = None
        delay = self.switches.delay(now)
        self.switches.record(now)
        if failed.content_failed:
            self.content_switches.record(now)
        self.upstream, self.client = replacement
        log.warning(
            "channel %s: session on %s failed (%s; %s); switch %d to %s in %g s",
            self.name,
            upstream.engine.base_url,
            failed.reason,
            _blamed(failed, upstream),
            self.switches.total,
            self.upstream.engine.base_url,
            delay,
        )
        # Players keep the window; the next session's first segment comes after a discontinuity.
        self._feed.window.mark_gap()
        if delay > 0:
            await trio.sleep(delay)

    def _may_switch(self, failed: SessionEnded, now: float) -> bool:
        """Whether ``failed`` may be replaced: an engine failure while the budget allows, a
        content failure once within the window as well."""
        if not self.switches.allowed(now):
            return False
        return (
            failed.engine_failed
            or failed.moved
            or (failed.content_failed and self.content_switches.allowed(now))
        )

    def end_stream(
        self, send: trio.MemorySendChannel[Event], reason: str, container_id: Any = None
    ) -> None:
        """Queue ``stream_ended`` for the current engine session's stream, once."""
        if self.stream_id is not None and self.sender is not None and self.report_end:
            self._emit(
                send,
                "stream_ended",
                ended_payload(
                    container_id=container_id or self.upstream.engine.container_id,
                    stream_id=self.stream_id,
                    content_id=self.upstream.key,
                    reason=reason,
                ),
            )
        self.stream_id = None

    def _emit(
        self, send: trio.MemorySendChannel[Event], kind: EventKind, payload: dict[str, Any]
    ) -> None:
        if self.sender is None or self.stream_id is None:
            return
        try:
            # Sized for two events per engine session the switch limit allows: never blocks.
            send.send_nowait(Event(kind, self.stream_id, payload))
        except (trio.BrokenResourceError, trio.WouldBlock):
            # The sender is gone: it was cancelled from outside (a hard stop of the process).
            log.warning("channel %s: %s lost: the event sender has stopped", self.name, kind)
            self.sender.dropped += 1
            return
        self.sender.pending += 1


def _blamed(failed: SessionEnded, upstream: Upstream) -> str:
    if upstream.engine_load is None:
        return "not an engine of ours: no breaker"
    return "the engine's breaker opens" if failed.engine_failed else "the content: no breaker"
