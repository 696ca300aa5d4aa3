"""Three proxies (the real service, each on its own socket) in front of one simulated engine,
with HAProxy from ``deploy/haproxy.cfg`` in front of them; who heard which request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
import trio

from trioproxy.config import Config
from trioproxy.testing.balancers import HAProxy, running_haproxy
from trioproxy.testing.engine import SimulatedEngine, demo_media

from ..media import running_proxy, serve_asgi

__all__ = ["INSTANCES", "Cluster", "first_bytes", "running_cluster", "server_name"]

INSTANCES = 3


@dataclass
class Cluster:
    haproxy: HAProxy
    stops: list[trio.Event]
    heard: list[tuple[int, str]] = field(default_factory=list)
    """(instance, path) of every request an instance answered, health checks included."""

    async def landed(
        self, client: httpx.AsyncClient, method: str, url: str
    ) -> tuple[httpx.Response, set[int]]:
        """Ask ``url`` (under HAProxy unless absolute): the answer and which instances heard it."""
        before = len(self.heard)
        if not url.startswith("http"):
            url = self.haproxy.url + url
        response = await client.request(method, url)
        return response, self.heard_since(before)

    async def streamed(self, url: str) -> tuple[bytes, set[int]]:
        """GET a stream (under HAProxy unless absolute): its status line and first body bytes,
        and which instances heard it."""
        before = len(self.heard)
        if not url.startswith("http"):
            url = self.haproxy.url + url
        start = await first_bytes(url)
        return start, self.heard_since(before)

    def heard_since(self, before: int) -> set[int]:
        return {i for i, path in self.heard[before:] if path != "/healthz"}

    def count(self, path: str) -> int:
        return sum(1 for _, heard in self.heard if heard == path)


def server_name(index: int) -> str:
    """The name deploy/haproxy.cfg gives instance ``index``."""
    return f"trioproxy{index + 1}"


async def first_bytes(url: str, size: int = 188) -> bytes:
    """The response to GET ``url`` up to ``size`` bytes of its body (a continuous stream never
    ends, so it is read on a socket of its own and hung up on)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    # HTTP/1.0: the body comes as it is, not in chunks.
    request = f"GET {target} HTTP/1.0\r\nHost: {parts.netloc}\r\n\r\n"
    received = b""
    with trio.fail_after(20):
        stream = await trio.open_tcp_stream(host, port)
        async with stream:
            await stream.send_all(request.encode())
            while True:
                chunk = await stream.receive_some(65536)
                received += chunk
                _, found, body = received.partition(b"\r\n\r\n")
                if not chunk or (found and len(body) >= size):
                    return received


async def _instance(
    config: Config,
    index: int,
    cluster_heard: list[tuple[int, str]],
    stop: trio.Event,
    *,
    task_status: trio.TaskStatus[str],
) -> None:
    async with running_proxy(
        config, heard=lambda path: cluster_heard.append((index, path))
    ) as running:
        task_status.started(running.url)
        await stop.wait()


@asynccontextmanager
async def running_cluster(engine: SimulatedEngine | None = None) -> AsyncIterator[Cluster]:
    if engine is None:
        engine = SimulatedEngine(demo_media(), durations=[2.0], backlog=8.0)
    heard: list[tuple[int, str]] = []
    stops = [trio.Event() for _ in range(INSTANCES)]
    async with serve_asgi(engine) as engine_url, trio.open_nursery() as nursery:
        config = Config(bind="127.0.0.1:0", engines=(engine_url,))
        addresses = []
        for index, stop in enumerate(stops):
            url = await nursery.start(_instance, config, index, heard, stop)
            addresses.append(url.removeprefix("http://"))
        async with running_haproxy(addresses) as haproxy:
            # Every instance passed a health check: none is on its way down.
            async with httpx.AsyncClient() as client:
                with trio.fail_after(10):
                    for index in range(INSTANCES):
                        await haproxy.wait_until(client, server_name(index), "UP")
            yield Cluster(haproxy, stops, heard)
        for stop in stops:
            stop.set()
