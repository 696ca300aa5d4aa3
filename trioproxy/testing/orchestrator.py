"""A fake orchestrator: the event sink and engine registry of CONTRACT §2 and §2b, as an ASGI app.

It accepts ``stream_started`` / ``stream_ended`` like the real one, records every event it accepted
(kind, payload, time) and every one it refused, and keeps books of the streams it knows: how often
each was started and ended, which are running (``GET /streams`` is answered from them), the load
it counts on each engine, which ended ids it never knew. Knobs make it slow, failing, strict
about its API key, or an operator who ends a stream. It keeps time with ``trio.current_time()``,
so it runs on a socket (benchmarks, the soak, end-to-end tests) and in memory on the virtual
clock (tests) alike.

Which orchestrator it is lives in its wire (:mod:`.orchestrator_wires`), chosen when it is
built, and nowhere else: the id a stream is booked under, which requests need the key and what a
refused key gets, how engine load is counted, the shape of every answer. :class:`V1Wire` is
the Python orchestrator (§2, the default); :class:`V2Wire` its Go rewrite (§2b), on port 8083
(``V2Wire()``) or the proxy-plane API under ``/api/v1`` (``V2Wire(PROXY_PLANE)``).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import trio
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope

from ..http.asgi import read_body, send_response, serve_lifespan
from .orchestrator_wires import (
    ORCHESTRATOR_API,
    PROXY_PLANE,
    BadEvent,
    Credentials,
    Stream,
    V1Wire,
    V2Wire,
    Wire,
    dig,
)

__all__ = [
    "ORCHESTRATOR_API",
    "PROXY_PLANE",
    "BadEvent",
    "Credentials",
    "FakeOrchestrator",
    "RecordedEvent",
    "Refusal",
    "Stream",
    "V1Wire",
    "V2Wire",
    "Wire",
]

LIST_PATHS = ("/streams", "/looping-streams")


@dataclass
class RecordedEvent:
    """One accepted event, in the order the orchestrator accepted them."""

    kind: str
    payload: dict[str, Any]
    at: float
    """When it was accepted (after the delay the orchestrator took)."""
    arrived: float = 0.0
    """When its request arrived."""


@dataclass(frozen=True)
class Refusal:
    """An event the orchestrator answered with anything but 200 (a key, a body, ``status``)."""

    kind: str
    status: int
    at: float
    payload: Any = None
    """The event's body, when it was JSON."""


@dataclass
class FakeOrchestrator:
    """An orchestrator that books every stream it is told about; knobs for time and failure.

    ``wire`` is the API it speaks (:class:`V1Wire` unless given). ``delay`` (or ``delays[kind]``)
    holds each event that long before it is answered; ``status`` answers events with that status
    instead of accepting them. ``list_delay``, ``list_status`` and ``list_body`` (raw bytes,
    e.g. garbage) do the same for ``/streams`` and ``/looping-streams``. ``body`` (raw bytes)
    replaces every answer it would give with status 200 — ``/engines``, the lists, events
    (booked as usual) — an orchestrator that answers garbage everywhere. With ``api_key`` set,
    requests need that key (which ones, and what a refusal is, the wire says).
    """

    api_key: str | None = None
    delay: float = 0.0
    delays: dict[str, float] = field(default_factory=dict)
    status: int = 200
    list_delay: float = 0.0
    list_status: int = 200
    list_body: bytes | None = None
    body: bytes | None = None
    engines: list[Any] = field(default_factory=list)
    """What ``GET /engines`` lists, as given (malformed rows too)."""
    looping: list[str] = field(default_factory=list)
    """What ``GET /looping-streams`` lists."""
    wire: Wire = field(default_factory=V1Wire)

    events: list[RecordedEvent] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    """Event posts answered with anything but 200, in order."""
    requests: Counter[str] = field(default_factory=Counter)
    """Requests by event kind (``stream_started``) or path (``/streams``), refused ones too."""
    streams: dict[str, Stream] = field(default_factory=dict)
    """Every stream ever started, by the id it is booked under (the last one, where a start
    overwrote another)."""
    started: Counter[str] = field(default_factory=Counter)
    """Accepted ``stream_started`` per stream id."""
    ended: Counter[str] = field(default_factory=Counter)
    """Accepted ``stream_ended`` per (known) stream id."""
    overwritten: list[str] = field(default_factory=list)
    """Ids of running streams a later ``stream_started`` overwrote."""
    load: Counter[str] = field(default_factory=Counter)
    """Streams counted on each engine, as the orchestrator counts them: v1 gives a count back
    when a stream ends or is overwritten, v2 only when it ends — so a stream overwritten while
    it ran shows as a count that never returns to 0."""
    ended_here: set[str] = field(default_factory=set)
    """Streams the orchestrator ended itself (an operator, the loop detector)."""
    ended_unknown: list[str] = field(default_factory=list)
    """Ids of ``stream_ended`` events for streams it never knew (v2: none running)."""
    in_flight: int = 0
    """Events being handled right now (held by ``delay``)."""

    # ---- the books --------------------------------------------------------------------------

    @property
    def running(self) -> dict[str, Stream]:
        """Streams started and not ended, by id."""
        return {sid: stream for sid, stream in self.streams.items() if stream.running}

    def per_container(self) -> Counter[str | None]:
        """How many running streams each container carries."""
        return Counter(stream.container_id for stream in self.running.values())

    @property
    def attempts(self) -> int:
        """Event posts received, accepted or not."""
        return sum(n for what, n in self.requests.items() if not what.startswith("/"))

    @property
    def list_reads(self) -> int:
        """Reads of ``/streams`` and ``/looping-streams``, answered or not."""
        return sum(self.requests[path] for path in LIST_PATHS)

    def kinds(self) -> list[str]:
        return [event.kind for event in self.events]

    def ended_reasons(self) -> list[str]:
        return [e.payload.get("reason", "") for e in self.events if e.kind == "stream_ended"]

    def end(self, stream_id: str, reason: str = "ended by the orchestrator") -> Stream:
        """An operator (or the loop detector) ends a running stream on the orchestrator's side."""
        stream = self.running[stream_id]
        self._close(stream, reason)
        self.ended_here.add(stream_id)
        return stream

    def end_one(self, rng: random.Random) -> str | None:
        """End a running stream picked by ``rng``; its id, or None when none runs."""
        running = sorted(self.running)
        if not running:
            return None
        stream_id = rng.choice(running)
        self.end(stream_id)
        return stream_id

    # ---- ASGI -------------------------------------------------------------------------------

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        if body is None:
            return
        headers = dict(scope["headers"])
        credentials = Credentials(
            *(
                value.decode("latin-1") if value is not None else None
                for value in (headers.get(b"authorization"), headers.get(b"x-api-key"))
            )
        )
        query = scope["query_string"].decode("latin-1")
        status, payload = await self.handle(
            scope["method"], scope["path"], query, credentials, body
        )
        if status == 200 and self.body is not None:
            payload = self.body
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        await send_response(send, status, [(b"content-type", b"application/json")], data)

    async def handle(
        self,
        method: str,
        path: str,
        query: str,
        credentials: Credentials,
        body: bytes,
    ) -> tuple[int, Any]:
        """Status and JSON-able answer (or raw bytes) for one request."""
        if not path.startswith(self.wire.prefix + "/"):
            return 404, self.wire.error(404, "Not Found")
        route = path.removeprefix(self.wire.prefix)
        if method == "GET" and route == "/health" and self.wire.has_health:
            return 200, {"status": "ok"}
        if method == "GET" and route == "/engines":
            self.requests[route] += 1
            refused = self._refusal(method, route, credentials)
            if refused is not None:
                return refused
            return 200, self.wire.engines_answer(self.engines, self.load)
        if method == "GET" and (
            route == "/streams" or (route == "/looping-streams" and self.wire.has_looping_streams)
        ):
            return await self._list(method, route, query, credentials)
        if method == "POST" and route.startswith("/events/"):
            return await self._event(method, route, credentials, body)
        if self.wire.guards_unknown_paths:
            refused = self._refusal(method, route, credentials)
            if refused is not None:
                return refused
        return 404, self.wire.error(404, "Not Found")

    def _refusal(self, method: str, route: str, credentials: Credentials) -> tuple[int, Any] | None:
        if self.api_key is None:
            return None
        refused = self.wire.refusal(method, route, credentials, self.api_key)
        if refused is None:
            return None
        status, detail = refused
        return status, self.wire.error(status, detail)

    async def _list(
        self, method: str, route: str, query: str, credentials: Credentials
    ) -> tuple[int, Any]:
        self.requests[route] += 1
        if self.list_delay:
            await trio.sleep(self.list_delay)
        refused = self._refusal(method, route, credentials)
        if refused is not None:
            return refused
        if self.list_status != 200:
            return self.list_status, self.wire.error(self.list_status, "failing")
        if self.list_body is not None:
            return 200, self.list_body
        if route == "/looping-streams":
            return 200, self.wire.looping_answer(self.looping)
        only_running = self.wire.lists_only_running(query)
        listed = self.running.values() if only_running else self.streams.values()
        return 200, self.wire.streams_answer(listed)

    async def _event(
        self, method: str, route: str, credentials: Credentials, body: bytes
    ) -> tuple[int, Any]:
        kind = route.removeprefix("/events/")
        self.requests[kind] += 1
        arrived = trio.current_time()
        status, answer = await self._book(kind, method, route, credentials, body, arrived)
        if status != 200:
            try:
                payload = json.loads(body)
            except ValueError:
                payload = None
            self.refused.append(Refusal(kind, status, trio.current_time(), payload))
        return status, answer

    async def _book(
        self,
        kind: str,
        method: str,
        route: str,
        credentials: Credentials,
        body: bytes,
        arrived: float,
    ) -> tuple[int, Any]:
        refused = self._refusal(method, route, credentials)
        if refused is not None:
            return refused
        self.in_flight += 1
        try:
            delay = self.delays.get(kind, self.delay)
            if delay:
                await trio.sleep(delay)
        finally:
            self.in_flight -= 1
        if self.status != 200:
            return self.status, self.wire.error(self.status, "failing")
        try:
            payload = json.loads(body)
            if not isinstance(payload, dict):
                raise BadEvent("an event is a JSON object")
            if kind == "stream_started":
                answer = self.wire.started_answer(self._book_started(payload))
            elif kind == "stream_ended":
                answer = self.wire.ended_answer(self._book_ended(payload))
            else:
                return 404, self.wire.error(404, "Not Found")
        except (ValueError, TypeError) as exc:  # BadEvent and JSON errors alike
            return self.wire.bad_status, self.wire.error(self.wire.bad_status, str(exc))
        self.events.append(RecordedEvent(kind, payload, trio.current_time(), arrived))
        return 200, answer

    def _book_started(self, payload: dict[str, Any]) -> Stream:
        stream_id = self.wire.started_id(payload)
        key = dig(payload, "stream", "key")
        container = payload.get("container_id")
        session = dig(payload, "session", "playback_session_id")
        stream = Stream(
            id=stream_id,
            key=key if isinstance(key, str) else None,
            container_id=container if isinstance(container, str) else None,
            playback_session_id=session if isinstance(session, str) else None,
            started_at=trio.current_time(),
            engine_id=self.wire.load_id(payload),
        )
        previous = self.streams.get(stream_id)
        if previous is not None and previous.running:
            self.overwritten.append(stream_id)
            if self.wire.gives_back_on_overwrite:
                self._give_back(previous)
        self.streams[stream_id] = stream  # a second start under the same id overwrites
        self.started[stream_id] += 1
        if stream.engine_id is not None:
            self.load[stream.engine_id] += 1
        return stream

    def _book_ended(self, payload: dict[str, Any]) -> Stream | None:
        stream_id, stream = self.wire.ended_stream(payload, self.streams)
        if stream is None:
            self.ended_unknown.append(stream_id)
            return None
        self.ended[stream.id] += 1
        if stream.running:
            reason = payload.get("reason")
            self._close(stream, reason if isinstance(reason, str) else None)
        return stream

    def _close(self, stream: Stream, reason: str | None) -> None:
        stream.ended_at = trio.current_time()
        stream.reason = reason
        self._give_back(stream)

    def _give_back(self, stream: Stream) -> None:
        if stream.engine_id is not None and self.load[stream.engine_id] > 0:
            self.load[stream.engine_id] -= 1
