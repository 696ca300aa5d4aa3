"""Fakes for fault tests: a faulty engine behind a transport that can refuse, and an orchestrator
that tracks running streams (``/streams``, ``/looping-streams``) like the real one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio

from trioproxy.channels.channel import Channel
from trioproxy.channels.registry import Registry
from trioproxy.config import Config
from trioproxy.http.app import ProxyApp
from trioproxy.testing.engine import SimulatedEngine
from trioproxy.testing.faults import FaultyEngine

from .fakes import (
    CONTENT_A,
    ENGINE_URL,
    ORCHESTRATOR_URL,
    PROXY_URL,
    FakeOrchestrator,
    RefusingTransport,
    default_config,
    small_media,
)

__all__ = ["FaultHarness", "StreamsOrchestrator", "fault_harness"]


@dataclass
class StreamsOrchestrator(FakeOrchestrator):
    """Also answers ``/streams?status=started`` and ``/looping-streams``."""

    running: dict[str, dict[str, Any]] = field(default_factory=dict)
    looping: list[str] = field(default_factory=list)
    list_status: int = 200
    list_body: bytes | None = None
    list_delay: float = 0.0
    list_reads: int = 0

    async def handle(self, method: str, path: str, scope: Any, body: bytes) -> tuple[int, Any]:
        if method == "GET" and path in ("/streams", "/looping-streams"):
            self.list_reads += 1
            if self.list_delay:
                await trio.sleep(self.list_delay)
            if self.api_key is not None:
                auth = dict(scope["headers"]).get(b"authorization")
                if auth is None:
                    return 401, {"detail": "missing key"}
                if auth.decode() != f"Bearer {self.api_key}":
                    return 403, {"detail": "wrong key"}
            if self.list_status != 200:
                return self.list_status, {"detail": "failing"}
            if path == "/looping-streams":
                return 200, {"stream_ids": list(self.looping)}
            return 200, list(self.running.values())
        status, payload = await super().handle(method, path, scope, body)
        if status == 200 and path == "/events/stream_started":
            self.running[payload["id"]] = {"id": payload["id"], "status": "started"}
        elif status == 200 and path == "/events/stream_ended":
            stream_id = self.events[-1].payload["stream_id"]
            self.running.pop(stream_id, None)
        return status, payload

    def end(self, stream_id: str) -> None:
        """An operator (or the loop detector) ends a stream on the orchestrator's side."""
        del self.running[stream_id]


class _Garbling(httpx.AsyncBaseTransport):
    """Answers the list endpoints with ``orchestrator.list_body`` when set (garbage JSON)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, orchestrator: StreamsOrchestrator) -> None:
        self.inner = inner
        self.orchestrator = orchestrator

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = self.orchestrator.list_body
        if body is not None and request.url.path in ("/streams", "/looping-streams"):
            await trio.lowlevel.checkpoint()
            return httpx.Response(200, content=body, request=request)
        return await self.inner.handle_async_request(request)


@dataclass
class FaultHarness:
    config: Config
    engine: FaultyEngine
    engine_transport: RefusingTransport
    orchestrator: StreamsOrchestrator
    orchestrator_transport: RefusingTransport
    registry: Registry
    client: httpx.AsyncClient

    @property
    def sim(self) -> SimulatedEngine:
        return self.engine.inner

    async def start(self, key: str = CONTENT_A) -> str:
        """/ace/getstream for ``key``: the playlist URL the player is sent to."""
        response = await self.client.get("/ace/getstream", params={"id": key})
        assert response.status_code == 302, response.text
        return str(response.headers["location"])

    def channel(self, key: str = CONTENT_A) -> Channel:
        channel = self.registry.get(key)
        assert channel is not None
        return channel

    def session_id(self, key: str = CONTENT_A) -> str:
        session = self.channel(key).session
        assert session is not None
        return session.playback_session_id

    def ended_reasons(self) -> list[str]:
        return [e.payload["reason"] for e in self.orchestrator.events if e.kind == "stream_ended"]


@asynccontextmanager
async def fault_harness(
    config: Config | None = None,
    engine: SimulatedEngine | None = None,
    orchestrator: StreamsOrchestrator | None = None,
    extra_mounts: dict[str, httpx.AsyncBaseTransport] | None = None,
) -> AsyncIterator[FaultHarness]:
    config = config or default_config()
    faulty = FaultyEngine(engine or SimulatedEngine(small_media(), durations=[2.0], backlog=6.0))
    orchestrator = orchestrator or StreamsOrchestrator()
    engine_transport = RefusingTransport(httpx.ASGITransport(faulty))  # type: ignore[arg-type]
    orchestrator_transport = RefusingTransport(
        _Garbling(httpx.ASGITransport(orchestrator), orchestrator)  # type: ignore[arg-type]
    )
    mounts: dict[str, httpx.AsyncBaseTransport] = {
        ENGINE_URL: engine_transport,
        ORCHESTRATOR_URL: orchestrator_transport,
    }
    mounts.update(extra_mounts or {})
    async with httpx.AsyncClient(mounts=mounts, timeout=None) as http:
        registry = Registry(config, http)
        async with trio.open_nursery() as nursery:
            await nursery.start(registry.run)
            transport = httpx.ASGITransport(ProxyApp(registry, config))  # type: ignore[arg-type]
            async with httpx.AsyncClient(transport=transport, base_url=PROXY_URL) as client:
                yield FaultHarness(
                    config,
                    faulty,
                    engine_transport,
                    orchestrator,
                    orchestrator_transport,
                    registry,
                    client,
                )
            registry.shutdown()


def no_jitter(monkeypatch: Any) -> None:
    """Backoff without jitter (the longest delay), so retry times are exact."""
    import random

    monkeypatch.setattr(random, "uniform", lambda low, high: high)


async def play(h: FaultHarness, url: str, until: float, period: float = 2.0) -> list[int]:
    """A player reloading ``url`` every ``period`` s until virtual time ``until``: the statuses."""
    statuses = []
    while trio.current_time() < until:
        response = await h.client.get(url)
        statuses.append(response.status_code)
        await trio.sleep(period)
    return statuses
