"""Fault injection in front of the simulated engine: what real engines do on a bad day.

:class:`FaultyEngine` wraps a :class:`~trioproxy.testing.engine.SimulatedEngine` and, per session
(or for every session with the key ``"*"``), answers playlists with 5xx or garbage, freezes the
playlist (a stall), answers segments with 404/5xx or truncated, or ends a session on its own;
MPEG-TS playback goes to the simulated engine as it is (its own ``ts_faults`` say what goes
wrong there). It
counts every request by kind, so tests can tell a bounded retry from a busy loop. Content can
be dead on it (per content key, :attr:`FaultyEngine.dead`): the engine answers for it, and has
nothing.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal, get_args
from urllib.parse import parse_qs

import trio
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, HTTPScope, Scope

from .engine import SimulatedEngine, TsFaults

__all__ = ["DEAD_ERROR", "FAULTS", "Dead", "Fault", "FaultyEngine", "request_kind"]

Fault = Literal[
    "playlist_5xx",
    "playlist_garbage",
    "playlist_hang",
    "stall",
    "segment_404",
    "segment_5xx",
    "segment_truncated",
    "segment_hang",
]
FAULTS: tuple[Fault, ...] = get_args(Fault)
Dead = Literal["refused", "silent"]
"""How an engine has nothing for a content: it refuses to open a session for it (HTTP 200,
``{"response": null, "error": ...}``), or opens one that never lists a segment, its stat saying
``prebuf`` with no peers (a dead torrent)."""
DEAD_ERROR = "failed to load content: no such content"
HANG = 3600.0
"""Seconds a hanging answer takes: longer than anything waits."""

GARBAGE = b"<html><body>502 Bad Gateway</body></html>\n"


def request_kind(path: str) -> str:
    """``open``, ``playlist``, ``segment``, ``stream`` (MPEG-TS playback), ``stat``, ``stop``
    or ``other``."""
    if path in ("/ace/manifest.m3u8", "/ace/getstream"):
        return "open"
    parts = path.strip("/").split("/")
    if len(parts) == 4 and parts[0] == "ace":
        return {"m": "playlist", "c": "segment", "r": "stream", "stat": "stat", "cmd": "stop"}.get(
            parts[1], "other"
        )
    return "other"


def _session_of(path: str) -> str:
    """The session a request is for: ``/ace/c/<session>/<n>.ts``, ``/ace/m/<key>/<session>.m3u8``,
    ``/ace/r/<key>/<session>``, ``/ace/stat/<key>/<session>``."""
    parts = path.strip("/").split("/")
    if len(parts) == 4 and parts[1] == "c":
        return parts[2]
    return parts[-1].split(".")[0]


@dataclass
class FaultyEngine:
    inner: SimulatedEngine
    faults: dict[str, Fault] = field(default_factory=dict)
    """Session id (or ``"*"``) → the fault its requests meet."""
    open_non_json: bool = False
    dead: dict[str, Dead] = field(default_factory=dict)
    """Content key → how the engine has nothing for it."""
    requests: Counter[str] = field(default_factory=Counter)
    ended_by_engine: list[str] = field(default_factory=list)
    _frozen: dict[str, bytes] = field(default_factory=dict)

    def fault_for(self, session_id: str) -> Fault | None:
        return self.faults.get(session_id) or self.faults.get("*")

    def end_session(self, session_id: str) -> bool:
        """The engine drops a session by itself (its stat_url then says so)."""
        session = self.inner.sessions.get(session_id)
        if session is None or session.stopped:
            return False
        session.stopped = True
        self.ended_by_engine.append(session_id)
        return True

    def clear(self, session_id: str = "*") -> None:
        self.faults.pop(session_id, None)
        if session_id == "*":
            self._frozen.clear()
        else:
            self._frozen.pop(session_id, None)

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        if request_kind(scope["path"]) == "stream":
            self.requests["stream"] += 1
            session = self.inner.sessions.get(_session_of(scope["path"]))
            silent = session is not None and self.dead.get(session.key) == "silent"
            faults = TsFaults(stall_after=0) if silent else None  # prebuffering for ever
            await self.inner.serve_ts(scope["path"], receive, send, faults)
            return
        status, content_type, body, length = await self.handle(scope)
        headers = [(b"content-type", content_type.encode()), (b"content-length", b"%d" % length)]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    async def handle(self, scope: HTTPScope) -> tuple[int, str, bytes, int]:
        """Status, content type, body and the Content-Length to declare."""
        path = scope["path"]
        kind = request_kind(path)
        self.requests[kind] += 1
        if kind == "open" and self.open_non_json:
            await trio.lowlevel.checkpoint()
            return 200, "text/html", GARBAGE, len(GARBAGE)
        query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode("latin-1")).items()}
        dead = self._dead(path, query)
        if dead is not None:
            await trio.lowlevel.checkpoint()
            return 200, *dead
        session_id = _session_of(path)
        fault = self.fault_for(session_id) if kind in ("playlist", "segment") else None
        if kind == "playlist" and fault == "playlist_5xx":
            await trio.lowlevel.checkpoint()
            return 503, "text/plain", b"busy", 4
        if fault in ("playlist_hang", "segment_hang") and fault.startswith(kind):
            await trio.sleep(HANG)
        if kind == "playlist" and fault == "playlist_garbage":
            await trio.lowlevel.checkpoint()
            return 200, "text/html", GARBAGE, len(GARBAGE)
        if kind == "playlist" and fault == "stall" and session_id in self._frozen:
            await trio.lowlevel.checkpoint()
            body = self._frozen[session_id]
            return 200, "application/vnd.apple.mpegurl", body, len(body)
        if kind == "segment" and fault in ("segment_404", "segment_5xx"):
            await trio.lowlevel.checkpoint()
            return (404 if fault == "segment_404" else 500), "text/plain", b"no", 2
        status, content_type, body = await self.inner.handle(path, query, scope)
        if kind == "playlist" and fault == "stall" and status == 200:
            self._frozen[session_id] = body
        if kind == "segment" and fault == "segment_truncated" and status == 200:
            return status, content_type, body[: len(body) // 2], len(body)
        return status, content_type, body, len(body)

    def _dead(self, path: str, query: dict[str, str]) -> tuple[str, bytes, int] | None:
        """What the engine answers for dead content (content type, body, length), if it is."""
        kind = request_kind(path)
        if kind == "open":
            how = self.dead.get(query.get("id") or query.get("infohash") or "")
            if how != "refused":
                return None
            body = json.dumps({"response": None, "error": DEAD_ERROR}).encode()
            return "application/json", body, len(body)
        session = self.inner.sessions.get(_session_of(path))
        if session is None or session.stopped or self.dead.get(session.key) != "silent":
            return None
        if kind == "playlist":  # prebuffering for ever: no segment is ever listed
            body = b"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"
            return "application/vnd.apple.mpegurl", body, len(body)
        if kind == "stat":
            stat = {"status": "prebuf", "peers": 0, "speed_down": 0, "speed_up": 0}
            body = json.dumps({"response": {**stat, "downloaded": 0}, "error": None}).encode()
            return "application/json", body, len(body)
        return None
