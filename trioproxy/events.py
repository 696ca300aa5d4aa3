"""Stream events for the orchestrator, delivered by one sender task per channel.

A channel puts ``stream_started`` and, at its end, ``stream_ended`` on a bounded memory channel;
its :class:`EventSender` posts them in order, retrying with exponential backoff and jitter until
they are delivered or the channel's teardown deadline passes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import trio

from .retry import backoff

__all__ = ["Event", "EventKind", "EventSender", "Orchestrator"]

log = logging.getLogger(__name__)

EventKind = Literal["stream_started", "stream_ended"]

ATTEMPT_TIMEOUT = 15.0
"""Seconds one POST may take before it counts as failed and is retried."""
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 15.0


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    stream_id: str
    payload: dict[str, Any]


class Orchestrator:
    """The orchestrator's event endpoints, over the registry's shared HTTP client."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, api_key: str | None) -> None:
        self._http = http
        self.base_url = base_url
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._auth_error_logged = False
        self.delivered = 0
        self.dropped = 0

    async def post(self, event: Event) -> httpx.Response:
        return await self._http.post(
            f"{self.base_url}/events/{event.kind}", json=event.payload, headers=self._headers
        )

    async def get(self, path: str) -> httpx.Response:
        """GET ``path`` (e.g. ``/streams``) with our credentials."""
        return await self._http.get(self.base_url + path, headers=self._headers)

    def auth_failed(self, status: int) -> None:
        """Log a rejected key once per process, at error level; later ones at debug."""
        if self._auth_error_logged:
            log.debug("orchestrator still rejects our credentials (HTTP %d)", status)
            return
        self._auth_error_logged = True
        hint = "API_KEY is not set" if not self._headers else "API_KEY is wrong"
        log.error(
            "configuration error: the orchestrator rejected our request with HTTP %d (%s); "
            "events are dropped until API_KEY matches the orchestrator's",
            status,
            hint,
        )


@dataclass
class EventSender:
    """Delivers one channel's events in order. Cancel :attr:`scope` (or set a deadline) to stop."""

    orchestrator: Orchestrator
    channel: str
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    delivered: int = 0
    dropped: int = 0
    pending: int = 0
    established: set[str] = field(default_factory=set)
    refused: set[str] = field(default_factory=set)

    def snapshot(self) -> dict[str, int]:
        return {"pending": self.pending, "delivered": self.delivered, "dropped": self.dropped}

    def give_up_by(self, deadline: float) -> None:
        """Stop retrying at ``deadline`` at the latest (an earlier deadline wins)."""
        self.scope.deadline = min(self.scope.deadline, deadline)

    async def run(self, receive: trio.MemoryReceiveChannel[Event]) -> None:
        with receive:
            with self.scope:
                async for event in receive:
                    await self._deliver(event)
                    self.pending -= 1
            if self.scope.cancelled_caught:
                lost = self.pending
                self.dropped += lost
                self.orchestrator.dropped += lost
                if lost:
                    log.warning(
                        "channel %s: %d event(s) not delivered before the deadline",
                        self.channel,
                        lost,
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
                    response = await self.orchestrator.post(event)
                    status = response.status_code
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__}: {exc}"
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
                self.orchestrator.auth_failed(status)
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
