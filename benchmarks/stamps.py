"""When the simulated engine sent each piece of media, and when a player got the same piece.

A piece of media is named by its PES header: ``(PID, PTS)``. The proxy passes PES headers through
unchanged (it may rewrite continuity counters and discontinuity flags, never a PTS), and the
simulated engine loops its media with the clocks shifted, so a ``(PID, PTS)`` names one PES of a
session for as long as it runs. :class:`StampingEngine` wraps the engine's ASGI app and records,
per session, ``time.monotonic()`` when each PES header left it: on the session's MPEG-TS stream
(the body message that carries it) or in a segment answer. A player scans what it receives the
same way (:class:`PtsScanner`); ``CLOCK_MONOTONIC`` is one clock for every process of the
machine, so the two times subtract.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import trio
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, ASGISendEvent, Scope

from trioproxy.hls.mpegts import PACKET_SIZE, SYNC
from trioproxy.hls.ts_packets import packet_pid, payload_offset, pes_pts
from trioproxy.testing.engine import SimulatedEngine
from trioproxy.testing.faults import request_kind

__all__ = ["PtsScanner", "StampingEngine", "key_text", "match", "pes_starts"]


def pes_starts(data: bytes | bytearray) -> list[tuple[int, int]]:
    """``(PID, PTS)`` of each PES that starts in ``data`` (whole packets from its first byte)."""
    found = []
    for pos in range(0, len(data) - PACKET_SIZE + 1, PACKET_SIZE):
        if data[pos] != SYNC or not data[pos + 1] & 0x40:
            continue
        start = payload_offset(data, pos)
        if start is None:
            continue
        pts = pes_pts(data, start, pos + PACKET_SIZE)
        if pts is not None:
            found.append((packet_pid(data, pos), pts))
    return found


def key_text(key: tuple[int, int]) -> str:
    """A ``(PID, PTS)`` as a JSON object key."""
    return f"{key[0]}:{key[1]}"


class PtsScanner:
    """Fed a transport stream in any chunking, gives back the ``(PID, PTS)`` of each PES start
    as soon as its packet is whole. Finds the packet alignment again after garbage."""

    def __init__(self) -> None:
        self._rest = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, int]]:
        buf = self._rest
        buf += data
        if buf and (buf[0] != SYNC or (len(buf) > PACKET_SIZE and buf[PACKET_SIZE] != SYNC)):
            at = _sync(buf)
            if at is None:
                del buf[: max(0, len(buf) - 2 * PACKET_SIZE)]
                return []
            del buf[:at]
        whole = len(buf) - len(buf) % PACKET_SIZE
        found = pes_starts(buf[:whole])
        del buf[:whole]
        return found


def _sync(buf: bytearray) -> int | None:
    """Where two sync bytes a packet apart begin, if anywhere."""
    at = buf.find(SYNC)
    while at >= 0 and at + PACKET_SIZE < len(buf):
        if buf[at + PACKET_SIZE] == SYNC:
            return at
        at = buf.find(SYNC, at + 1)
    return None


def match(
    arrivals: Iterable[tuple[str, float]], sent: dict[str, float], start: float, end: float
) -> list[float]:
    """Seconds from each piece's send to its arrival, for arrivals in ``[start, end)`` whose
    piece was stamped (the first arrival of a piece per player is passed in)."""
    return [at - sent[key] for key, at in arrivals if start <= at < end and key in sent]


@dataclass
class SessionStamps:
    key: str
    """The content id the session plays."""
    sent: dict[str, float] = field(default_factory=dict)
    """``(PID, PTS)`` → when the engine sent it to the proxy."""
    published: dict[str, float] = field(default_factory=dict)
    """``(PID, PTS)`` → when the engine had it: the stream's send, or its segment's
    availability (what the engine's playlist lists from then on)."""


class StampingEngine:
    """A :class:`SimulatedEngine` that counts requests by kind and stamps what it sends."""

    def __init__(self, engine: SimulatedEngine) -> None:
        self.engine = engine
        self.requests: Counter[str] = Counter()
        self.sessions: dict[str, SessionStamps] = {}

    def _stamps(self, session_id: str) -> SessionStamps | None:
        stamps = self.sessions.get(session_id)
        if stamps is None:
            session = self.engine.sessions.get(session_id)
            if session is None:
                return None
            stamps = self.sessions[session_id] = SessionStamps(session.key)
        return stamps

    def take(self, key: str) -> dict[str, Any]:
        """The stamps of every session of content ``key``, forgotten here."""
        sent: dict[str, float] = {}
        published: dict[str, float] = {}
        for session_id, stamps in list(self.sessions.items()):
            if stamps.key == key:
                sent.update(stamps.sent)
                published.update(stamps.published)
                del self.sessions[session_id]
        return {"sent": sent, "published": published}

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] != "http":
            await self.engine(scope, receive, send)
            return
        path = scope["path"]
        kind = request_kind(path)
        self.requests[kind] += 1
        parts = path.strip("/").split("/")
        if kind == "stream":
            scanner = PtsScanner()
            session_id = parts[-1]

            async def stream_send(message: ASGISendEvent) -> None:
                body = message.get("body") if message["type"] == "http.response.body" else None
                stamps = self._stamps(session_id) if body else None
                if body and stamps is not None:
                    now = time.monotonic()
                    for found in scanner.feed(bytes(body)):
                        text = key_text(found)
                        stamps.sent.setdefault(text, now)
                        stamps.published.setdefault(text, now)
                await send(message)

            await self.engine(scope, receive, stream_send)
        elif kind == "segment" and parts[3].removesuffix(".ts").isdigit():
            session_id, number = parts[2], int(parts[3].removesuffix(".ts"))

            async def segment_send(message: ASGISendEvent) -> None:
                body = message.get("body") if message["type"] == "http.response.body" else None
                stamps = self._stamps(session_id) if body else None
                session = self.engine.sessions.get(session_id)
                if body and stamps is not None and session is not None:
                    now = time.monotonic()
                    available = self.engine.available_at(session, number)
                    published = available + now - trio.current_time()
                    for found in pes_starts(bytes(body)):
                        text = key_text(found)
                        stamps.sent.setdefault(text, now)
                        stamps.published.setdefault(text, published)
                await send(message)

            await self.engine(scope, receive, segment_send)
        else:
            await self.engine(scope, receive, send)
