"""A simulated AceStream engine: the engine's HTTP API over a looping live stream of real MPEG-TS.

It speaks the parts of the engine API trioproxy uses (session open as JSON, the live media playlist,
segments, the continuous MPEG-TS playback of ``/ace/getstream`` (:mod:`.engine_ts`), ``stat_url``,
``command_url?method=stop``) and keeps time with ``trio.current_time()``, so it runs on real
sockets for the demo and on Trio's virtual clock in tests.
"""

from __future__ import annotations

import json
import math
import uuid
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal
from urllib.parse import parse_qs

import trio
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, HTTPScope, Scope

from ..http.asgi import send_response, serve_lifespan
from . import mpegts
from .engine_ts import STREAM_PREFIX, StreamState, TsFaults, is_stream_path, serve_stream
from .mpegts import payload_packets

__all__ = [
    "DEMO_CONTENT_ID",
    "EngineSession",
    "Formats",
    "SimulatedEngine",
    "TsFaults",
    "demo_media",
    "is_stream_path",
]

Formats = Literal["hls", "both", "ts"]
"""What an engine plays out: ``hls`` (``/ace/getstream`` hands out the HLS playlist too, as
an engine without MPEG-TS output would), ``both``, or ``ts`` (its HLS answers 404)."""

DEMO_CONTENT_ID = "0123456789abcdef0123456789abcdef01234567"


def demo_media() -> list[bytes]:
    """The shipped MPEG-TS segments: 6 × 2 s of H.264 test pattern, 12 s that loop seamlessly."""
    folder = resources.files("trioproxy.testing") / "media"
    names = sorted(
        (entry.name for entry in folder.iterdir() if entry.name.endswith(".ts")),
        key=lambda name: int(name.removeprefix("seg").removesuffix(".ts")),
    )
    return [(folder / name).read_bytes() for name in names]


@dataclass
class EngineSession:
    session_id: str
    key: str
    pid: str
    opened_at: float
    stopped: bool = False
    segment_requests: dict[int, int] = field(default_factory=dict)
    stream: StreamState = field(default_factory=StreamState)
    """Its MPEG-TS playback connections."""


@dataclass
class SimulatedEngine:
    """A live stream per session: segment ``n`` exists ``prebuffer`` + ``n+1`` durations after open.

    The knobs model real engines: slow session opens, a slow swarm start (``prebuffer``), slow
    segment downloads, segments that vanish before anyone fetched them.
    """

    media: list[bytes]
    durations: list[float] = field(default_factory=lambda: [2.0])
    list_size: int = 5
    open_delay: float = 0.0
    prebuffer: float = 0.0
    backlog: float = 0.0
    """Seconds of stream that already exist when a session opens (a channel already on air)."""
    segment_delay: float = 0.0
    stop_delay: float = 0.0
    session_error: str | None = None
    hidden: set[int] = field(default_factory=set)
    """Sequence numbers never listed: the engine's window slides past them at once."""
    missing: set[int] = field(default_factory=set)
    """Listed, but answered with 404."""
    empty: set[int] = field(default_factory=set)
    """Listed, but answered with ``200`` and no body."""
    seamless: bool = False
    """Loop real MPEG-TS media without a break (clocks shifted); else mark each loop with a
    discontinuity, as an engine would whose source restarted."""
    formats: Formats = "hls"
    ts_faults: dict[str, TsFaults] = field(default_factory=dict)
    """Session id (or ``"*"``) → what its MPEG-TS playback does wrong."""
    sessions: dict[str, EngineSession] = field(default_factory=dict)
    stops: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._cache: dict[int, bytes] = {}
        self._counts: Counter[int] | None = None

    def segment_bytes(self, n: int, *, seamless: bool | None = None) -> bytes:
        """Segment ``n`` of the live stream: the media, looped (``seamless``: the clocks
        shifted and counters continued; the engine's ``seamless`` unless told)."""
        loop, index = divmod(n, len(self.media))
        if not (self.seamless if seamless is None else seamless) or loop == 0:
            return self.media[index]
        data = self._cache.get(n)
        if data is None:
            if self._counts is None:
                self._counts = Counter[int]()
                for media in self.media:
                    self._counts.update(payload_packets(media))
            period = sum(self.duration(i) for i in range(len(self.media)))
            counters = {pid: loop * count % 16 for pid, count in self._counts.items()}
            data = mpegts.shift(self.media[index], round(loop * period * 90_000), counters)
            if len(self._cache) >= 4 * len(self.media):
                del self._cache[next(iter(self._cache))]
            self._cache[n] = data
        return data

    def duration(self, n: int) -> float:
        return self.durations[n % len(self.durations)]

    def available_at(self, session: EngineSession, n: int) -> float:
        """When segment ``n`` of ``session`` exists (``produced`` counts it from then on)."""
        cycles, rest = divmod(n + 1, len(self.durations))
        made = cycles * sum(self.durations) + sum(self.durations[:rest])
        return session.opened_at + self.prebuffer - self.backlog + made

    def ts_faults_for(self, session_id: str) -> TsFaults:
        return self.ts_faults.get(session_id) or self.ts_faults.get("*") or TsFaults()

    def produced(self, session: EngineSession, now: float) -> int:
        """How many segments exist at ``now``."""
        elapsed = now - session.opened_at - self.prebuffer + self.backlog
        if elapsed < 0:
            return 0
        cycle = sum(self.durations)
        count = int(elapsed // cycle) * len(self.durations)
        rest = elapsed - (count // len(self.durations)) * cycle
        for d in self.durations:
            if rest + 1e-9 < d:
                break
            rest -= d
            count += 1
        return count

    def stat(self, session: EngineSession, now: float) -> dict[str, Any]:
        """What ``stat_url`` says: 7 peers, 400 kB/s down, 20 up, the segments made so far as
        downloaded, and the live position in segment numbers and seconds since the open."""
        made = self.produced(session, now)
        first = max(0, made - self.list_size)
        return {
            "status": "dl" if made else "prebuf",
            "peers": 7,
            "speed_down": 400,
            "speed_up": 20,
            "downloaded": sum(len(self.segment_bytes(n)) for n in range(made)),
            "uploaded": 0,
            "livepos": {
                "live_first": first,
                "live_last": max(0, made - 1),
                "pos": max(0, made - 1),
                "first_ts": round(session.opened_at),
                "last_ts": round(now),
            },
        }

    @property
    def open_sessions(self) -> list[EngineSession]:
        return [s for s in self.sessions.values() if not s.stopped]

    def playlist(self, session: EngineSession, now: float) -> str:
        count = self.produced(session, now)
        if count - 1 in self.hidden:
            count -= 1  # a hidden segment is never the newest one listed ...
        first = max(0, count - self.list_size)
        for n in self.hidden:
            if first <= n < count:
                first = n + 1  # ... and once a newer one exists, the list starts after it
        target = math.ceil(max(self.durations))
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:3",
            f"#EXT-X-TARGETDURATION:{target}",
            f"#EXT-X-MEDIA-SEQUENCE:{first}",
        ]
        for n in range(first, count):
            if n and n % len(self.media) == 0 and not self.seamless:
                lines.append("#EXT-X-DISCONTINUITY")  # the loop starts over: timestamps jump back
            lines.append(f"#EXTINF:{self.duration(n):.3f},")
            lines.append(f"/ace/c/{session.session_id}/{n}.ts")
        return "\n".join(lines) + "\n"

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if is_stream_path(scope["path"]):
            await self.serve_ts(scope["path"], receive, send)
            return
        query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode("latin-1")).items()}
        status, content_type, body = await self.handle(scope["path"], query, scope)
        await send_response(send, status, [(b"content-type", content_type.encode())], body)

    async def handle(
        self, path: str, query: dict[str, str], scope: HTTPScope
    ) -> tuple[int, str, bytes]:
        parts = path.strip("/").split("/")
        now = trio.current_time()
        if path in ("/ace/manifest.m3u8", "/ace/getstream"):
            if path == "/ace/manifest.m3u8" and self.formats == "ts":
                return 404, "text/plain", b"not found"
            return await self._open(query, scope, ts=path == "/ace/getstream")
        if self.formats == "ts" and parts[:2] in (["ace", "m"], ["ace", "c"]):
            return 404, "text/plain", b"not found"
        if len(parts) == 4 and parts[:2] == ["ace", "m"] and parts[3].endswith(".m3u8"):
            session = self.sessions.get(parts[3].removesuffix(".m3u8"))
            if session is None or session.stopped:
                return 404, "text/plain", b"unknown session"
            return 200, "application/vnd.apple.mpegurl", self.playlist(session, now).encode()
        if len(parts) == 4 and parts[:2] == ["ace", "c"] and parts[3].endswith(".ts"):
            return await self._segment(parts[2], parts[3].removesuffix(".ts"), now)
        if len(parts) == 4 and parts[:2] == ["ace", "stat"]:
            session = self.sessions.get(parts[3])
            if session is None or session.stopped:
                return _json({"response": None, "error": "unknown playback session id"})
            return _json({"response": self.stat(session, now), "error": None})
        if len(parts) == 4 and parts[:2] == ["ace", "cmd"] and query.get("method") == "stop":
            session = self.sessions.get(parts[3])
            if session is None or session.stopped:
                return _json({"response": None, "error": "unknown playback session id"})
            if self.stop_delay:
                await trio.sleep(self.stop_delay)
            session.stopped = True
            self.stops.append(session.session_id)
            return _json({"response": "ok", "error": None})
        return 404, "text/plain", b"not found"

    async def serve_ts(
        self,
        path: str,
        receive: ASGIReceiveCallable,
        send: ASGISendCallable,
        faults: TsFaults | None = None,
    ) -> None:
        """A session's MPEG-TS playback (:mod:`.engine_ts`), with ``faults`` (else its own
        :attr:`ts_faults`); 404 for a session not open."""
        session = self.sessions.get(path.strip("/").split("/")[-1])
        if session is None or session.stopped or self.formats == "hls":
            await send_response(send, 404, [(b"content-type", b"text/plain")], b"unknown session")
            return
        await serve_stream(
            state=session.stream,
            available_at=lambda n: self.available_at(session, n),
            segment=lambda n: self.segment_bytes(n, seamless=True),
            stopped=lambda: session.stopped,
            faults=lambda: faults or self.ts_faults_for(session.session_id),
            receive=receive,
            send=send,
        )

    async def _open(
        self, query: dict[str, str], scope: HTTPScope, *, ts: bool
    ) -> tuple[int, str, bytes]:
        if self.open_delay:
            await trio.sleep(self.open_delay)
        key = query.get("id") or query.get("infohash")
        if not key or not query.get("pid"):
            return _json({"response": None, "error": "missing content id or pid"})
        if self.session_error:
            return _json({"response": None, "error": self.session_error})
        session = EngineSession(uuid.uuid4().hex, key, query["pid"], trio.current_time())
        self.sessions[session.session_id] = session
        host = dict(scope["headers"]).get(b"host", b"127.0.0.1:6878").decode("latin-1")
        base = f"http://{host}"
        playback = f"{base}/ace/m/{key}/{session.session_id}.m3u8"
        if ts and self.formats != "hls":
            playback = f"{base}{STREAM_PREFIX}{key}/{session.session_id}"
        return _json(
            {
                "response": {
                    "playback_url": playback,
                    "stat_url": f"{base}/ace/stat/{key}/{session.session_id}",
                    "command_url": f"{base}/ace/cmd/{key}/{session.session_id}",
                    "playback_session_id": session.session_id,
                    "infohash": key,
                    "is_live": 1,
                    "is_encrypted": 0,
                },
                "error": None,
            }
        )

    async def _segment(self, session_id: str, name: str, now: float) -> tuple[int, str, bytes]:
        session = self.sessions.get(session_id)
        if session is None or session.stopped or not name.isdigit():
            return 404, "text/plain", b"unknown segment"
        n = int(name)
        if n in self.missing or n >= self.produced(session, now) or n in self.hidden:
            return 404, "text/plain", b"no such segment"
        session.segment_requests[n] = session.segment_requests.get(n, 0) + 1
        if self.segment_delay:
            await trio.sleep(self.segment_delay)
        return 200, "video/mp2t", b"" if n in self.empty else self.segment_bytes(n)


def _json(payload: dict[str, Any]) -> tuple[int, str, bytes]:
    return 200, "application/json", json.dumps(payload).encode()
