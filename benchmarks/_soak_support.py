"""The soak's fixtures: an orchestrator that keeps exact books, players, and a fault injector.

Everything here runs in the soak's own process, on 127.0.0.1; the proxy under test runs in a
child process so that its RSS and file descriptors are its own.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import trio
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope

from trioproxy.http.asgi import read_body, send_response, serve_lifespan
from trioproxy.testing.faults import FAULTS, FaultyEngine

from .report import pyplot

__all__ = ["Injector", "Players", "SoakOrchestrator", "plot"]

log = logging.getLogger("soak")

_URI = re.compile(r"^[^#\s].*$", re.MULTILINE)


@dataclass
class SoakOrchestrator:
    """Accepts events and keeps books: per stream id, how many starts and ends it accepted."""

    api_key: str
    status: int = 200
    delay: float = 0.0
    garbage_lists: bool = False
    started: Counter[str] = field(default_factory=Counter)
    ended: Counter[str] = field(default_factory=Counter)
    running: dict[str, str] = field(default_factory=dict)
    """Stream id → playback session id, for streams started and not ended."""
    ended_here: set[str] = field(default_factory=set)
    """Streams the orchestrator ended itself (an operator, the loop detector)."""
    ended_unknown: list[str] = field(default_factory=list)
    """``stream_ended`` for ids never started: must stay empty."""
    sessions: dict[str, str] = field(default_factory=dict)
    """Stream id → playback session id, for every stream ever started."""
    attempts: Counter[str] = field(default_factory=Counter)

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
        auth = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        status, payload = await self._handle(scope["method"], scope["path"], auth, body)
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        await send_response(send, status, [(b"content-type", b"application/json")], data)

    async def _handle(self, method: str, path: str, auth: str, body: bytes) -> tuple[int, Any]:
        if auth != f"Bearer {self.api_key}":
            return 401, {"detail": "bad key"}
        if method == "GET" and path in ("/streams", "/looping-streams"):
            self.attempts[path] += 1
            if self.garbage_lists:
                return 200, b"<html>oops"
            if path == "/looping-streams":
                return 200, {"stream_ids": []}
            return 200, [{"id": sid, "status": "started"} for sid in self.running]
        if method != "POST" or not path.startswith("/events/"):
            return 404, {"detail": "not found"}
        kind = path.removeprefix("/events/")
        self.attempts[kind] += 1
        if self.delay:
            await trio.sleep(self.delay)
        if self.status != 200:
            return self.status, {"detail": "failing"}
        payload = json.loads(body)
        if kind == "stream_started":
            sid = payload["labels"]["stream_id"]
            self.started[sid] += 1
            self.running[sid] = payload["session"]["playback_session_id"]
            self.sessions[sid] = payload["session"]["playback_session_id"]
            return 200, {"id": sid, "status": "started"}
        sid = payload["stream_id"]
        if sid not in self.started:
            self.ended_unknown.append(sid)
            return 200, {"updated": False, "stream": None}
        self.ended[sid] += 1
        self.running.pop(sid, None)
        return 200, {"updated": True, "stream": None}

    def end_one(self, rng: random.Random) -> str | None:
        """End a running stream on the orchestrator's side."""
        if not self.running:
            return None
        sid = rng.choice(sorted(self.running))
        del self.running[sid]
        self.ended_here.add(sid)
        return sid


@dataclass
class Players:
    """Players joining and leaving channels at random; counts every answer they get."""

    proxy: str
    keys: list[str]
    rng: random.Random
    statuses: Counter[str] = field(default_factory=Counter)
    segments: int = 0
    segment_bytes: int = 0
    active: int = 0
    joined: int = 0
    aborted_mid_segment: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    def _count(self, what: str, status: int) -> None:
        self.statuses[f"{what} {status}"] += 1

    async def player(self, http: httpx.AsyncClient, lifetime: float) -> None:
        self.active += 1
        self.joined += 1
        try:
            with trio.move_on_after(lifetime):
                await self._play(http)
        except httpx.HTTPError as exc:
            self.errors[type(exc).__name__] += 1
        finally:
            self.active -= 1

    async def _play(self, http: httpx.AsyncClient) -> None:
        # A few popular channels stay up; the rest come and go with their few players.
        weights = [1.0 / (rank + 1) for rank in range(len(self.keys))]
        key = self.rng.choices(self.keys, weights)[0]
        response = await http.get(f"{self.proxy}/ace/getstream", params={"id": key})
        self._count("getstream", response.status_code)
        if response.status_code != 302:
            return
        url = urljoin(self.proxy, response.headers["location"])
        seen: set[str] = set()
        hammer = self.rng.random() < 0.05  # a broken player: reloads 50 times a second
        rude = self.rng.random() < 0.2  # leaves in the middle of a segment now and then
        while True:
            response = await http.get(url)
            self._count("playlist", response.status_code)
            if response.status_code in (502, 503):
                await trio.sleep(float(response.headers.get("retry-after", "2")))
                continue
            if response.status_code != 200:
                return
            if hammer:
                await trio.sleep(0.02)
                continue
            uris = [u for u in _URI.findall(response.text) if u not in seen][-2:]
            for uri in uris:
                seen.add(uri)
                await self._segment(http, urljoin(self.proxy, uri), rude)
            await trio.sleep(2.0)

    async def _segment(self, http: httpx.AsyncClient, url: str, rude: bool) -> None:
        async with http.stream("GET", url) as response:
            self._count("segment", response.status_code)
            if rude and self.rng.random() < 0.3:
                async for _chunk in response.aiter_raw(4096):
                    break
                self.aborted_mid_segment += 1
                await response.aclose()
                return
            data = await response.aread()
        if response.status_code == 200:
            self.segments += 1
            self.segment_bytes += len(data)


@dataclass
class Injector:
    """Injects one fault at a time, at random, each for a bounded time; logs what it did."""

    engines: list[FaultyEngine]
    orchestrator: SoakOrchestrator
    proxy: str
    api_key: str
    rng: random.Random
    began: float = 0.0
    done: Counter[str] = field(default_factory=Counter)
    timeline: list[dict[str, Any]] = field(default_factory=list)

    async def run(self, http: httpx.AsyncClient, every: float) -> None:
        """A fault every ``every`` seconds on average; several may overlap."""
        async with trio.open_nursery() as nursery:
            while True:
                await trio.sleep(self.rng.uniform(0.5 * every, 1.5 * every))
                nursery.start_soon(self.one, http)

    async def one(self, http: httpx.AsyncClient) -> None:
        choice = self.rng.choice(
            [
                "session_fault",
                "session_fault",
                "session_fault",
                "engine_ends_session",
                "open_error",
                "open_slow",
                "open_non_json",
                "orchestrator_5xx",
                "orchestrator_slow",
                "orchestrator_garbage_lists",
                "orchestrator_ends_stream",
                "delete_channel",
            ]
        )
        engine = self.rng.choice(self.engines)
        duration = self.rng.uniform(5.0, 40.0)
        started = trio.current_time()
        detail = ""
        if choice == "session_fault":
            sessions = [s.session_id for s in engine.inner.open_sessions]
            if not sessions:
                return
            session_id = self.rng.choice(sessions)
            fault = self.rng.choice(FAULTS)
            engine.faults[session_id] = fault
            detail = fault
            await trio.sleep(duration)
            engine.clear(session_id)
        elif choice == "engine_ends_session":
            sessions = [s.session_id for s in engine.inner.open_sessions]
            if not sessions:
                return
            engine.end_session(self.rng.choice(sessions))
        elif choice in ("open_error", "open_slow", "open_non_json"):
            if choice == "open_error":
                engine.inner.session_error = "content unavailable"
            elif choice == "open_slow":
                engine.inner.open_delay = 4.0
            else:
                engine.open_non_json = True
            await trio.sleep(duration)
            engine.inner.session_error = None
            engine.inner.open_delay = 0.0
            engine.open_non_json = False
        elif choice == "orchestrator_5xx":
            self.orchestrator.status = 503
            await trio.sleep(duration)
            self.orchestrator.status = 200
        elif choice == "orchestrator_slow":
            self.orchestrator.delay = 5.0  # below the sender's 15 s attempt timeout
            await trio.sleep(duration)
            self.orchestrator.delay = 0.0
        elif choice == "orchestrator_garbage_lists":
            self.orchestrator.garbage_lists = True
            await trio.sleep(duration)
            self.orchestrator.garbage_lists = False
        elif choice == "orchestrator_ends_stream":
            detail = self.orchestrator.end_one(self.rng) or ""
        else:
            status = await http.get(f"{self.proxy}/proxy/status")
            channels = [c["channel"] for c in status.json()["channels"]]
            if not channels:
                return
            name = self.rng.choice(channels)
            response = await http.delete(
                f"{self.proxy}/proxy/channels/{name}",
                headers={"Authorization": f"Bearer {self.api_key}"},
            )
            detail = f"{name[:8]} → {response.status_code}"
        self.done[choice] += 1
        self.timeline.append(
            {"at": round(started - self.began, 1), "fault": choice, "detail": detail}
        )
        log.info("fault: %s %s", choice, detail)


def plot(report: dict[str, Any], path: Path) -> None:
    """RSS and open fds over time; players and channels below, with the injected faults."""
    plt = pyplot()
    samples = report["samples"]
    t = [s["t"] / 60.0 for s in samples]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    top.plot(t, [s["rss_kib"] / 1024.0 for s in samples], color="tab:blue", label="RSS (MiB)")
    top.set_ylabel("proxy RSS (MiB)", color="tab:blue")
    top.set_ylim(bottom=0)
    fd_axis = top.twinx()
    fd_axis.plot(t, [s["fds"] for s in samples], color="tab:orange", label="open fds")
    fd_axis.set_ylabel("open file descriptors", color="tab:orange")
    fd_axis.set_ylim(bottom=0)
    top.set_title(
        f"trioproxy soak, {report['duration_minutes']:g} min: "
        f"events {report['events']['sent']}/{report['events']['expected']}, "
        f"sessions opened {report['sessions']['opened']} / stopped "
        f"{report['sessions']['stopped_by_proxy'] + report['sessions']['ended_by_engine']}"
    )
    bottom.plot(t, [s["players"] for s in samples], label="players", color="tab:green")
    bottom.plot(t, [s["channels"] or 0 for s in samples], label="channels", color="tab:purple")
    for fault in report["fault_timeline"]:
        bottom.axvline(fault["at"] / 60.0, color="tab:red", alpha=0.15, linewidth=1)
    top.axvline(report["duration_minutes"], color="grey", linestyle="--", linewidth=1)
    bottom.axvline(report["duration_minutes"], color="grey", linestyle="--", linewidth=1)
    bottom.set_xlabel("minutes (red lines: injected faults; dashed: players stop, channels drain)")
    bottom.set_ylabel("count")
    bottom.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
