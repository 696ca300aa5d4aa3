"""What tells one orchestrator API from another, for :class:`~.orchestrator.FakeOrchestrator`.

A wire decides the id a stream is booked under, which requests need the key and what a refused
key gets, how engine load is counted, and the shape of every answer; the fake keeps the books.
:class:`V1Wire` is the Python orchestrator (CONTRACT §2); :class:`V2Wire` its Go rewrite
(§2b), on port 8083 (:data:`ORCHESTRATOR_API`) or under ``/api/v1`` (:data:`PROXY_PLANE`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

__all__ = [
    "ORCHESTRATOR_API",
    "PROXY_PLANE",
    "BadEvent",
    "Credentials",
    "Stream",
    "V1Wire",
    "V2Wire",
    "Wire",
    "dig",
]

ORCHESTRATOR_API: Literal["8083"] = "8083"
"""v2's orchestrator API (``ORCHESTRATOR_URL=http://host:8083``)."""
PROXY_PLANE: Literal["api/v1"] = "api/v1"
"""v2's proxy-plane API (``ORCHESTRATOR_URL=http://host:8000/api/v1``)."""


class BadEvent(ValueError):
    """An event body the orchestrator cannot book (answered 422 by v1, 400 by v2)."""


@dataclass(frozen=True)
class Credentials:
    """The key-carrying headers of one request."""

    authorization: str | None = None
    api_key: str | None = None
    """``X-API-Key``."""


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
    engine_id: str | None = None
    """The engine its load was counted on (v2: top-level ``engine_id``, else ``container_id``)."""

    @property
    def running(self) -> bool:
        return self.ended_at is None


def dig(payload: dict[str, Any], *path: str) -> Any:
    value: Any = payload
    for name in path:
        value = value.get(name) if isinstance(value, dict) else None
    return value


def _text(value: Any) -> str | None:
    """A non-empty string, else None (Go reads a missing or null string as ``""``)."""
    return value if isinstance(value, str) and value else None


class Wire(Protocol):
    """What tells one orchestrator API from another; :class:`FakeOrchestrator` keeps the books."""

    name: str
    prefix: str
    has_looping_streams: bool
    has_health: bool
    guards_unknown_paths: bool
    gives_back_on_overwrite: bool
    bad_status: int

    def refusal(
        self, method: str, route: str, credentials: Credentials, key: str
    ) -> tuple[int, str] | None: ...
    def started_id(self, payload: dict[str, Any]) -> str: ...
    def load_id(self, payload: dict[str, Any]) -> str | None: ...
    def ended_stream(
        self, payload: dict[str, Any], streams: Mapping[str, Stream]
    ) -> tuple[str, Stream | None]: ...
    def started_answer(self, stream: Stream) -> Any: ...
    def ended_answer(self, stream: Stream | None) -> Any: ...
    def streams_answer(self, streams: Iterable[Stream]) -> Any: ...
    def lists_only_running(self, query: str) -> bool: ...
    def looping_answer(self, ids: Iterable[str]) -> Any: ...
    def engines_answer(self, engines: list[Any], load: Counter[str]) -> Any: ...
    def error(self, status: int, detail: str) -> Any: ...


class V1Wire:
    """The Python orchestrator's API (CONTRACT §2): ids, keys and answer shapes.

    A stream is booked under ``labels.stream_id`` when the event names one, else under
    ``"<key>|<playback_session_id>"``; a second ``stream_started`` for an id overwrites the first.
    ``stream_ended`` names the stream by ``stream_id``. ``GET /engines`` needs no key; every
    other request does: 401 without the header, 403 with a wrong key. Load is the streams
    running on a container.
    """

    name = "v1"
    prefix = ""
    has_looping_streams = True
    has_health = False
    guards_unknown_paths = False
    gives_back_on_overwrite = True
    bad_status = 422

    def refusal(
        self, method: str, route: str, credentials: Credentials, key: str
    ) -> tuple[int, str] | None:
        """Status and detail a request is refused with for its key, or None when it may pass."""
        if method == "GET" and route == "/engines":
            return None
        if credentials.authorization is None:
            return 401, "missing key"
        if credentials.authorization != f"Bearer {key}":
            return 403, "wrong key"
        return None

    def started_id(self, payload: dict[str, Any]) -> str:
        """The id a ``stream_started`` is booked under."""
        chosen = dig(payload, "labels", "stream_id")
        if isinstance(chosen, str) and chosen:
            return chosen
        key = dig(payload, "stream", "key")
        session = dig(payload, "session", "playback_session_id")
        if not isinstance(key, str) or not isinstance(session, str):
            raise BadEvent("stream_started names no stream")
        return f"{key}|{session}"

    def load_id(self, payload: dict[str, Any]) -> str | None:
        return _text(payload.get("container_id"))

    def ended_stream(
        self, payload: dict[str, Any], streams: Mapping[str, Stream]
    ) -> tuple[str, Stream | None]:
        """The id a ``stream_ended`` names, and the stream it ends (None: unknown)."""
        stream_id = payload.get("stream_id")
        if not isinstance(stream_id, str):
            raise BadEvent("stream_ended names no stream_id")
        return stream_id, streams.get(stream_id)

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

    def lists_only_running(self, query: str) -> bool:
        return "status=started" in query.split("&")

    def looping_answer(self, ids: Iterable[str]) -> Any:
        return {"stream_ids": list(ids)}

    def engines_answer(self, engines: list[Any], load: Counter[str]) -> Any:
        return list(engines)

    def error(self, status: int, detail: str) -> Any:
        return {"detail": detail}


class V2Wire:
    """The Go orchestrator's API (CONTRACT §2b), on one of its two surfaces.

    ``ORCHESTRATOR_API`` (port 8083): every request but ``/health`` needs the key (``X-API-Key``,
    else ``Authorization: Bearer``; missing or wrong: 401); events need a top-level
    ``content_id`` (else 400); lists are wrapped (``{"engines": [...], "total": n}``).
    ``PROXY_PLANE`` (port 8000, under ``/api/v1``): no key; ``content_id``, else ``stream.key``;
    ``stream_ended`` by ``content_id``, else a stream whose id equals ``stream_id``; bare lists.

    Both: streams are keyed by content id, a second ``stream_started`` overwrites the first
    without giving its engine count back; load is counted only from a top-level ``engine_id``
    (else ``container_id``); an unknown ``stream_ended`` is ignored with 200; ``/streams`` lists
    what runs whatever ``?status=`` says; there is no ``/looping-streams``.
    """

    name = "v2"
    has_looping_streams = False
    has_health = True
    gives_back_on_overwrite = False
    bad_status = 400

    def __init__(self, surface: Literal["8083", "api/v1"] = ORCHESTRATOR_API) -> None:
        self.surface = surface
        self.proxy_plane = surface == PROXY_PLANE
        self.prefix = "/api/v1" if self.proxy_plane else ""
        self.guards_unknown_paths = not self.proxy_plane

    def refusal(
        self, method: str, route: str, credentials: Credentials, key: str
    ) -> tuple[int, str] | None:
        if self.proxy_plane or route == "/health":
            return None
        provided = credentials.api_key  # X-API-Key first: a wrong one is not saved by Bearer
        if not provided and (credentials.authorization or "").startswith("Bearer "):
            provided = (credentials.authorization or "").removeprefix("Bearer ")
        return None if provided == key else (401, "unauthorized")

    def started_id(self, payload: dict[str, Any]) -> str:
        content_id = _text(payload.get("content_id"))
        if content_id is None and self.proxy_plane:
            content_id = _text(dig(payload, "stream", "key"))
        if content_id is None:
            raise BadEvent("content_id required")
        return content_id

    def load_id(self, payload: dict[str, Any]) -> str | None:
        return _text(payload.get("engine_id")) or _text(payload.get("container_id"))

    def ended_stream(
        self, payload: dict[str, Any], streams: Mapping[str, Stream]
    ) -> tuple[str, Stream | None]:
        content_id = _text(payload.get("content_id"))
        stream_id = _text(payload.get("stream_id"))
        if content_id is None and (stream_id is None or not self.proxy_plane):
            raise BadEvent(
                "content_id or stream_id required" if self.proxy_plane else "content_id required"
            )
        running = {sid: stream for sid, stream in streams.items() if stream.running}
        found = running.get(content_id) if content_id is not None else None
        if found is None and stream_id is not None:
            found = running.get(stream_id)  # ids are content ids: a stream id of ours never is
        return content_id or stream_id or "", found

    def stream_row(self, stream: Stream) -> dict[str, Any]:
        return {
            "id": stream.id,
            "content_id": stream.id,
            "key": stream.key or stream.id,
            "key_type": "content_id",
            "engine_id": stream.engine_id or "",
            "container_id": stream.container_id or stream.engine_id or "",
            "playback_session_id": stream.playback_session_id or "",
            "status": "started" if stream.running else "ended",
        }

    def started_answer(self, stream: Stream) -> Any:
        return self.stream_row(stream)

    def ended_answer(self, stream: Stream | None) -> Any:
        return {"status": "ended"}

    def streams_answer(self, streams: Iterable[Stream]) -> Any:
        rows = [self.stream_row(stream) for stream in streams]
        return rows if self.proxy_plane else {"streams": rows, "total": len(rows)}

    def lists_only_running(self, query: str) -> bool:
        return True  # v2 forgets an ended stream; ?status= changes nothing

    def looping_answer(self, ids: Iterable[str]) -> Any:
        raise AssertionError("v2 has no /looping-streams")

    def engines_answer(self, engines: list[Any], load: Counter[str]) -> Any:
        rows = [self._engine_row(row, load) for row in engines]
        return rows if self.proxy_plane else {"engines": rows, "total": len(rows)}

    def _engine_row(self, row: Any, load: Counter[str]) -> Any:
        if not isinstance(row, dict) or not isinstance(row.get("container_id"), str):
            return row
        return {"draining": False, "stream_count": load[row["container_id"]], **row}

    def error(self, status: int, detail: str) -> Any:
        return {"error": detail}
