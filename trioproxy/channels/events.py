"""Stream events for the orchestrator, delivered by one sender per channel.

A channel puts ``stream_started`` and, at its end, ``stream_ended`` on a bounded memory channel;
its :class:`EventSender` posts them in order, retrying with exponential backoff and jitter until
they are delivered or the channel's teardown deadline passes.

The sender takes events off the memory channel at once, into its own outbox: while it posts one
(or holds one, see below) a second task takes whatever arrives, so a channel that fails over
again and again while the orchestrator is down never finds the memory channel full. The outbox
stays small by coalescing: a ``stream_ended`` whose ``stream_started`` is still in the outbox
(not being posted) takes it away with it — the orchestrator never heard of that stream, so
neither event is owed. However long the outage, the outbox holds the event being posted, its
``stream_ended``, and the newest stream's ``stream_started`` and ``stream_ended``.

An unexpected error in the sender ends the sender only (logged, its pending events counted
dropped, :attr:`EventSender.settled` set): never the channel nor its siblings.

Order per content: v2 keys streams by content id, so a ``stream_ended`` of a content that
arrives after the next ``stream_started`` of the same content ends the new stream in its books.
Within one channel the queue keeps the order. Across channels (a stop followed at once by a new
request for the content), the new sender is given the :attr:`EventSender.settled` events of the
senders still closing for that content (``after``) and holds its ``stream_started`` until they
are set: each is set when that sender has delivered or given up everything, by its own deadline
at the latest. Only the event waits; the channel and its players never do.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

import trio

from ..retry import backoff
from ..upstream.orchestrator import (
    Event,
    EventKind,
    Orchestrator,
    OrchestratorAuthError,
    OrchestratorError,
)

__all__ = ["Event", "EventKind", "EventSender"]

log = logging.getLogger(__name__)

ATTEMPT_TIMEOUT = 15.0
"""Seconds one POST may take before it counts as failed and is retried."""
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 15.0


@dataclass
class EventSender:
    """Delivers one channel's events in order. Cancel :attr:`scope` (or set a deadline) to stop.

    ``stream_started`` is first held until every event in ``after`` is set (the earlier senders
    of the same content); :attr:`settled` is set when :meth:`run` returns, whatever ended it.
    """

    orchestrator: Orchestrator
    channel: str
    after: Sequence[trio.Event] = ()
    settled: trio.Event = field(default_factory=trio.Event)
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    delivered: int = 0
    dropped: int = 0
    pending: int = 0
    established: set[str] = field(default_factory=set)
    refused: set[str] = field(default_factory=set)
    coalesced: int = 0
    """Events never posted because their stream ended before its ``stream_started`` was."""
    _outbox: deque[Event] = field(default_factory=deque, init=False, repr=False)
    _closed: bool = field(default=False, init=False, repr=False)
    _hold: trio.CancelScope | None = field(default=None, init=False, repr=False)
    """The wait of the outbox's first ``stream_started`` for the earlier senders, if any."""

    def snapshot(self) -> dict[str, int]:
        return {"pending": self.pending, "delivered": self.delivered, "dropped": self.dropped}

    def give_up_by(self, deadline: float) -> None:
        """Stop retrying at ``deadline`` at the latest (an earlier deadline wins)."""
        self.scope.deadline = min(self.scope.deadline, deadline)

    async def run(self, receive: trio.MemoryReceiveChannel[Event]) -> None:
        """Post every event ``receive`` brings, until it is closed and all are posted, the
        deadline passes, or an unexpected error ends this sender (and only it)."""
        try:
            with receive:
                with self.scope:
                    try:
                        await self._post_all(receive)
                    except* Exception:
                        log.exception("channel %s: the event sender failed", self.channel)
                        self._give_up("(the event sender failed)")
                if self.scope.cancelled_caught:
                    self._give_up("before the deadline")
        finally:
            self.settled.set()

    def _give_up(self, why: str) -> None:
        """Count every event not delivered yet as dropped."""
        lost, self.pending = self.pending, 0
        self._outbox.clear()
        self.dropped += lost
        self.orchestrator.dropped += lost
        if lost:
            log.warning("channel %s: %d event(s) not delivered %s", self.channel, lost, why)

    async def _take(self, receive: trio.MemoryReceiveChannel[Event]) -> None:
        """Move events into the outbox as they come, until the channel closes it."""
        async for event in receive:
            self._put(event)
        self._closed = True

    async def _taking(
        self, receive: trio.MemoryReceiveChannel[Event], work: Callable[[], Awaitable[None]]
    ) -> None:
        """Run ``work`` (a post, a hold) while events that arrive go into the outbox."""
        async with trio.open_nursery() as nursery:
            if not self._closed:
                nursery.start_soon(self._take, receive)
            await work()
            nursery.cancel_scope.cancel()

    def _put(self, event: Event) -> None:
        if event.kind == "stream_ended":
            for index, queued in enumerate(self._outbox):
                if queued.kind == "stream_started" and queued.stream_id == event.stream_id:
                    del self._outbox[index]
                    if index == 0 and self._hold is not None:
                        self._hold.cancel()  # nothing held any more
                    self.pending -= 2
                    self.coalesced += 2
                    log.info(
                        "channel %s: stream %s ended before its stream_started could be sent; "
                        "neither is sent",
                        self.channel,
                        event.stream_id,
                    )
                    return
        self._outbox.append(event)

    async def _post_all(self, receive: trio.MemoryReceiveChannel[Event]) -> None:
        """Post the outbox in order until the memory channel is closed and the outbox empty."""
        while True:
            if not self._outbox:
                if self._closed:
                    return
                try:
                    self._put(await receive.receive())
                except trio.EndOfChannel:
                    self._closed = True
                continue
            event = self._outbox[0]
            if event.kind == "stream_started" and any(not e.is_set() for e in self.after):
                await self._taking(receive, self._hold_first)
                continue  # its stream may have ended meanwhile, taking it away
            self._outbox.popleft()
            await self._taking(receive, partial(self._deliver, event))
            self.pending -= 1

    async def _hold_first(self) -> None:
        """Hold the first ``stream_started`` for the earlier senders, unless it goes away."""
        with trio.CancelScope() as self._hold:
            await self._after_earlier_senders()
        self._hold = None

    async def _after_earlier_senders(self) -> None:
        """Wait until the earlier senders of this content have settled (bounded by theirs)."""
        waiting = [event for event in self.after if not event.is_set()]
        if not waiting:
            return
        began = trio.current_time()
        for event in waiting:
            await event.wait()
        log.info(
            "channel %s: stream_started held %.1f s until the previous stream_ended settled",
            self.channel,
            trio.current_time() - began,
        )

    async def _deliver(self, event: Event) -> None:
        if event.kind == "stream_ended" and event.stream_id not in self.established:
            # Never name a stream the orchestrator did not accept: it would end another one.
            log.warning(
                "channel %s: stream_ended for %s not sent: its stream_started failed",
                self.channel,
                event.stream_id,
            )
            self._drop()
            return
        attempt = 0
        while True:
            status: int | None = None
            error = ""
            with trio.move_on_after(ATTEMPT_TIMEOUT) as attempt_scope:
                try:
                    status = await self.orchestrator.post_event(event)
                except OrchestratorAuthError as exc:
                    status = exc.status  # logged once by the client
                except OrchestratorError as exc:
                    error = str(exc)
            if attempt_scope.cancelled_caught:
                error = f"no answer within {ATTEMPT_TIMEOUT:g} s"
            if status is not None and 200 <= status < 300:
                self.delivered += 1
                self.orchestrator.delivered += 1
                if event.kind == "stream_started":
                    self.established.add(event.stream_id)
                log.info(
                    "channel %s: %s delivered (stream %s)",
                    self.channel,
                    event.kind,
                    event.stream_id,
                )
                return
            if status in (401, 403):
                self._drop()
                return
            if status is not None and 400 <= status < 500 and status not in (408, 425, 429):
                log.error(
                    "channel %s: orchestrator refused %s with HTTP %d; dropped",
                    self.channel,
                    event.kind,
                    status,
                )
                self._drop()
                return
            reason = error or f"HTTP {status}"
            delay = backoff(attempt, BACKOFF_FIRST, BACKOFF_MAX)
            level = logging.WARNING if attempt == 0 else logging.DEBUG
            log.log(
                level,
                "channel %s: %s not delivered (%s); retrying",
                self.channel,
                event.kind,
                reason,
            )
            attempt += 1
            await trio.sleep(delay)

    def _drop(self) -> None:
        self.dropped += 1
        self.orchestrator.dropped += 1
