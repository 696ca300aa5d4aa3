"""In-process fakes: an orchestrator, a transport that can refuse connections, and a harness
that wires the proxy to a simulated engine without sockets (so tests run on virtual time)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope

from trioproxy.channels.registry import Registry
from trioproxy.config import Config
from trioproxy.http.app import ProxyApp
from trioproxy.http.asgi import read_body, send_response
from trioproxy.testing.engine import SimulatedEngine, demo_media

ENGINE_URL = "http://engine.test:6878"
ORCHESTRATOR_URL = "http://orchestrator.test"
PROXY_URL = "http://proxy.test"

CONTENT_A = "a" * 40
CONTENT_B = "b" * 40


def small_media(count: int = 64, size: int = 1000) -> list[bytes]:
    """Distinct fake segment payloads (tests that never decode media); no loop within 64."""
    return [bytes([n]) * size for n in range(count)]


@dataclass
class RecordedEvent:
    kind: str
    payload: dict[str, Any]
    at: float


@dataclass
class FakeOrchestrator:
    """Accepts events like the real orchestrator; knobs for delay, status and auth."""

    delay: float = 0.0
    status: int = 200
    api_key: str | None = None
    engines: list[dict[str, Any]] = field(default_factory=list)
    events: list[RecordedEvent] = field(default_factory=list)
    attempts: int = 0

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        if body is None:
            return
        status, payload = await self.handle(scope["method"], scope["path"], scope, body)
        data = json.dumps(payload).encode()
        await send_response(send, status, [(b"content-type", b"application/json")], data)

    async def handle(self, method: str, path: str, scope: Any, body: bytes) -> tuple[int, Any]:
        if method == "GET" and path == "/engines":
            return 200, self.engines
        if method != "POST" or not path.startswith("/events/"):
            return 404, {"detail": "not found"}
        self.attempts += 1
        if self.api_key is not None:
            headers = dict(scope["headers"])
            auth = headers.get(b"authorization")
            if auth is None:
                return 401, {"detail": "missing key"}
            if auth.decode() != f"Bearer {self.api_key}":
                return 403, {"detail": "wrong key"}
        if self.delay:
            await trio.sleep(self.delay)
        if self.status != 200:
            return self.status, {"detail": "failing"}
        payload = json.loads(body)
        kind = path.removeprefix("/events/")
        self.events.append(RecordedEvent(kind, payload, trio.current_time()))
        if kind == "stream_started":
            return 200, {"id": payload["labels"]["stream_id"], "status": "started"}
        return 200, {"updated": True, "stream": None}


class RefusingTransport(httpx.AsyncBaseTransport):
    """Wraps a transport; while ``refusing`` is set, every request fails to connect."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.refusing = False
        self.refused = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.refusing:
            self.refused += 1
            await trio.lowlevel.checkpoint()
            raise httpx.ConnectError("connection refused", request=request)
        return await self.inner.handle_async_request(request)


def asgi_transport(app: Any) -> httpx.ASGITransport:
    """httpx types ASGI apps loosely (MutableMapping scopes); ours are typed with Hypercorn's."""
    return httpx.ASGITransport(app)


@dataclass
class Harness:
    """A proxy wired to a simulated engine and a fake orchestrator, all in memory."""

    config: Config
    engine: SimulatedEngine
    orchestrator: FakeOrchestrator
    orchestrator_transport: RefusingTransport
    registry: Registry
    client: httpx.AsyncClient

    async def open_playlist(self, key: str = CONTENT_A, **params: str) -> httpx.Response:
        """What a player does first: /ace/getstream, then the URL it was redirected to."""
        response = await self.client.get("/ace/getstream", params={"id": key, **params})
        assert response.status_code == 302, response.text
        return await self.client.get(response.headers["location"])


def default_config(**changes: Any) -> Config:
    values: dict[str, Any] = {
        "engines": (ENGINE_URL,),
        "orchestrator_url": ORCHESTRATOR_URL,
        "hls_initial_segments": 2,
        "proxy_grace_period": 5.0,
        "hls_client_idle_timeout": 10.0,
    }
    values.update(changes)
    return Config(**values)


@asynccontextmanager
async def harness(
    config: Config | None = None,
    engine: SimulatedEngine | None = None,
    orchestrator: FakeOrchestrator | None = None,
) -> AsyncIterator[Harness]:
    config = config or default_config()
    engine = engine or SimulatedEngine(small_media(), durations=[2.0], backlog=6.0)
    orchestrator = orchestrator or FakeOrchestrator()
    orchestrator_transport = RefusingTransport(asgi_transport(orchestrator))
    nowhere = RefusingTransport(httpx.MockTransport(lambda request: httpx.Response(599)))
    nowhere.refusing = True  # any other host: connection refused, never the real network
    mounts: dict[str, httpx.AsyncBaseTransport] = {
        ENGINE_URL: asgi_transport(engine),
        ORCHESTRATOR_URL: orchestrator_transport,
        "all://": nowhere,
    }
    async with httpx.AsyncClient(mounts=mounts, timeout=None) as http:
        registry = Registry(config, http)
        async with trio.open_nursery() as nursery:
            await nursery.start(registry.run)
            app = ProxyApp(registry, config)
            transport = asgi_transport(app)
            async with httpx.AsyncClient(transport=transport, base_url=PROXY_URL) as client:
                yield Harness(
                    config, engine, orchestrator, orchestrator_transport, registry, client
                )
            registry.shutdown()


def channel_tasks(registry: Registry) -> list[str]:
    """Names of the channel tasks still running in the registry's nursery."""
    return [name for name in registry.task_names if name.startswith("channel ")]


__all__ = [
    "CONTENT_A",
    "CONTENT_B",
    "ENGINE_URL",
    "ORCHESTRATOR_URL",
    "FakeOrchestrator",
    "Harness",
    "RefusingTransport",
    "channel_tasks",
    "default_config",
    "demo_media",
    "harness",
    "small_media",
]
