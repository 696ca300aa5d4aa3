"""A fake orchestrator: the event sink and engine registry of CONTRACT §2, as an ASGI app.

It accepts ``stream_started`` / ``stream_ended`` like the real one, records every event it accepted
(kind, payload, time), and keeps books of the streams it knows: how often each was started and
ended, which are running (``GET /streams?status=started`` is answered from them), how many run on
each container, which ended ids it never knew. Knobs make it slow, failing, strict about its API
key, or an operator who ends a stream. It keeps time with ``trio.current_time()``, so it runs on
a socket (benchmarks, the soak) and in memory on the virtual clock (tests) alike.

What makes it a *v1* orchestrator — the id a stream is booked under, which requests need the key
and what a refused key gets, the shape of every answer — lives in :class:`V1Wire` and nowhere else.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import trio
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope

from ..http.asgi import read_body, send_response, serve_lifespan

__all__ = ["BadEvent", "FakeOrchestrator", "RecordedEvent", "Stream", "V1Wire"]

LIST_PATHS = ("/streams", "/looping-streams")


class BadEvent(ValueError):
    """An event body the orchestrator cannot book (answered 422, like pydantic would)."""


@dataclass
class RecordedEvent:
    """One accepted event, in the order the orchestrator accepted them."""

    kind: str
    payload: dict[str, Any]
    at: float
    """When it was accepted (after the delay the orchestrator took)."""
    arrived: float = 0.0
    """When its request arrived."""


@dataclass
class Stream:
    """A stream in the orchestrator's books."""

    id: str
    key: str | None
    container_id: str | None
    playback_session_id: str | None
    started_at: float
    ended_at: float | None = None
    reason: str | None = None

    @property
    def running(self) -> bool:
        return self.ended_at is None


def _dig(payload: dict[str, Any], *path: str) -> Any:
    value: Any = payload
    for name in path:
        value = value.get(name) if isinstance(value, dict) else None
    return value


class V1Wire:
    """The Python orchestrator's API (CONTRACT §2): ids, keys and answer shapes.

    A stream is booked under ``labels.stream_id`` when the event names one, else under
    ``"<key>|<playback_session_id>"``; a second ``stream_started`` for an id overwrites the first.
    ``stream_ended`` names the stream by ``stream_id``. ``GET /engines`` needs no key; every
    other request does: 401 without the header, 403 with a wrong key.
    """

    name = "v1"
    has_looping_streams = True

    def refusal(self, method: str, path: str, authorization: str | None, key: str) -> int | None:
        """The status a request is refused with for its key, or None when it may pass."""
        if method == "GET" and path == "/engines":
            return None
        if authorization is None:
            return 401
        if authorization != f"Bearer {key}":
            return 403
        return None

    def started_id(self, payload: dict[str, Any]) -> str:
        """The id a ``stream_started`` is booked under."""
        chosen = _dig(payload, "labels", "stream_id")
        if isinstance(chosen, str) and chosen:
            return chosen
        key = _dig(payload, "stream", "key")
        session = _dig(payload, "session", "playback_session_id")
        if not isinstance(key, str) or not isinstance(session, str):
            raise BadEvent("stream_started names no stream")
        return f"{key}|{session}"

    def ended_id(self, payload: dict[str, Any]) -> str:
        """The id of the stream a ``stream_ended`` ends."""
        stream_id = payload.get("stream_id")
        if not isinstance(stream_id, str):
            raise BadEvent("stream_ended names no stream_id")
        return stream_id

    def started_answer(self, stream: Stream) -> Any:
        return {**self.stream_row(stream), "status": "started"}

    def ended_answer(self, stream: Stream | None) -> Any:
        return {
            "updated": stream is not None,
            "stream": self.stream_row(stream) if stream else None,
        }

    def stream_row(self, stream: Stream) -> dict[str, Any]:
        return {
            "id": stream.id,
            "key": stream.key,
            "container_id": stream.container_id,
            "playback_session_id": stream.playback_session_id,
            "status": "started" if stream.running else "ended",
        }

    def streams_answer(self, streams: Iterable[Stream]) -> Any:
        return [self.stream_row(stream) for stream in streams]

    def looping_answer(self, ids: Iterable[str]) -> Any:
        return {"stream_ids": list(ids)}

    def engines_answer(self, engines: list[Any]) -> Any:
        return list(engines)

    def error(self, status: int, detail: str) -> Any:
        return {"detail": detail}


@dataclass
class FakeOrchestrator:
    """An orchestrator that books every stream it is told about; knobs for time and failure.

    ``delay`` (or ``delays[kind]``) holds each event that long before it is answered;
    ``status`` answers events with that status instead of accepting them. ``list_delay``,
    ``list_status`` and ``list_body`` (raw bytes, e.g. garbage) do the same for
    ``/streams`` and ``/looping-streams``. With ``api_key`` set, requests need that key.
    """

    api_key: str | None = None
    delay: float = 0.0
    delays: dict[str, float] = field(default_factory=dict)
    status: int = 200
    list_delay: float = 0.0
    list_status: int = 200
    list_body: bytes | None = None
    engines: list[Any] = field(default_factory=list)
    """What ``GET /engines`` lists, as given (malformed rows too)."""
    looping: list[str] = field(default_factory=list)
    """What ``GET /looping-streams`` lists."""
    wire: V1Wire = field(default_factory=V1Wire)

    events: list[RecordedEvent] = field(default_factory=list)
    requests: Counter[str] = field(default_factory=Counter)
    """Requests by event kind (``stream_started``) or path (``/streams``), refused ones too."""
    streams: dict[str, Stream] = field(default_factory=dict)
    """Every stream ever started, by the id it is booked under."""
    started: Counter[str] = field(default_factory=Counter)
    """Accepted ``stream_started`` per stream id."""
    ended: Counter[str] = field(default_factory=Counter)
    """Accepted ``stream_ended`` per (known) stream id."""
    ended_here: set[str] = field(default_factory=set)
    """Streams the orchestrator ended itself (an operator, the loop detector)."""
    ended_unknown: list[str] = field(default_factory=list)
    """Ids of ``stream_ended`` events for streams it never knew."""
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
        stream.ended_at = trio.current_time()
        stream.reason = reason
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
        authorization = headers.get(b"authorization")
        auth = authorization.decode("latin-1") if authorization is not None else None
        query = scope["query_string"].decode("latin-1")
        status, payload = await self.handle(scope["method"], scope["path"], query, auth, body)
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        await send_response(send, status, [(b"content-type", b"application/json")], data)

    async def handle(
        self, method: str, path: str, query: str, authorization: str | None, body: bytes
    ) -> tuple[int, Any]:
        """Status and JSON-able answer (or raw bytes) for one request."""
        if method == "GET" and path == "/engines":
            self.requests[path] += 1
            refused = self._refusal(method, path, authorization)
            if refused is not None:
                return refused
            return 200, self.wire.engines_answer(self.engines)
        if method == "GET" and (
            path == "/streams" or (path == "/looping-streams" and self.wire.has_looping_streams)
        ):
            return await self._list(method, path, query, authorization)
        if method == "POST" and path.startswith("/events/"):
            return await self._event(method, path, authorization, body)
        return 404, self.wire.error(404, "Not Found")

    def _refusal(self, method: str, path: str, authorization: str | None) -> tuple[int, Any] | None:
        if self.api_key is None:
            return None
        status = self.wire.refusal(method, path, authorization, self.api_key)
        if status is None:
            return None
        return status, self.wire.error(status, "missing key" if status == 401 else "wrong key")

    async def _list(
        self, method: str, path: str, query: str, authorization: str | None
    ) -> tuple[int, Any]:
        self.requests[path] += 1
        if self.list_delay:
            await trio.sleep(self.list_delay)
        refused = self._refusal(method, path, authorization)
        if refused is not None:
            return refused
        if self.list_status != 200:
            return self.list_status, self.wire.error(self.list_status, "failing")
        if self.list_body is not None:
            return 200, self.list_body
        if path == "/looping-streams":
            return 200, self.wire.looping_answer(self.looping)
        only_started = "status=started" in query.split("&")
        listed = self.running.values() if only_started else self.streams.values()
        return 200, self.wire.streams_answer(listed)

    async def _event(
        self, method: str, path: str, authorization: str | None, body: bytes
    ) -> tuple[int, Any]:
        kind = path.removeprefix("/events/")
        self.requests[kind] += 1
        arrived = trio.current_time()
        refused = self._refusal(method, path, authorization)
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
            return 422, self.wire.error(422, str(exc))
        self.events.append(RecordedEvent(kind, payload, trio.current_time(), arrived))
        return 200, answer

    def _book_started(self, payload: dict[str, Any]) -> Stream:
        stream_id = self.wire.started_id(payload)
        key = _dig(payload, "stream", "key")
        container = payload.get("container_id")
        session = _dig(payload, "session", "playback_session_id")
        stream = Stream(
            id=stream_id,
            key=key if isinstance(key, str) else None,
            container_id=container if isinstance(container, str) else None,
            playback_session_id=session if isinstance(session, str) else None,
            started_at=trio.current_time(),
        )
        self.streams[stream_id] = stream  # a second start under the same id overwrites
        self.started[stream_id] += 1
        return stream

    def _book_ended(self, payload: dict[str, Any]) -> Stream | None:
        stream_id = self.wire.ended_id(payload)
        stream = self.streams.get(stream_id)
        if stream is None:
            self.ended_unknown.append(stream_id)
            return None
        self.ended[stream_id] += 1
        if stream.running:
            stream.ended_at = trio.current_time()
            reason = payload.get("reason")
            stream.reason = reason if isinstance(reason, str) else None
        return stream
