"""Several proxies in memory as one cluster: one engine, one orchestrator, one store.

Each instance is a :func:`~.harness.harness` (so the proxy is assembled the one way the service
does it) with ``leases`` set to a shared :class:`~trioproxy.cluster.memory.MemoryLeases` and
``TRIOPROXY_INSTANCE_URL`` ``http://instance-<n>.test``; a :class:`Switchboard` lets every
instance reach the others' apps at those URLs (relays stream, as on sockets). On the autojump
clock, leases lapse at exact times. :meth:`Cluster.kill` is a process death: its connections
reset, its heartbeats and renewals stop, nothing of it is stopped cleanly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
import trio

from ..channels.upstreams import RelayUpstream
from ..cluster.memory import MemoryLeases
from ..config import Config
from .asgi_stream import StreamingASGITransport
from .engine import SimulatedEngine
from .harness import Harness, default_config, harness
from .orchestrator import FakeOrchestrator

__all__ = ["Cluster", "Switchboard", "cluster", "instance_url"]


def instance_url(number: int) -> str:
    return f"http://instance-{number}.test"


class Switchboard(httpx.AsyncBaseTransport):
    """Routes each request to the instance its host names; a host not (or no longer) on the
    board refuses the connection."""

    def __init__(self) -> None:
        self.lines: dict[str, StreamingASGITransport] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        line = self.lines.get(request.url.host)
        if line is None:
            raise httpx.ConnectError(f"connection refused by {request.url.host}")
        return await line.handle_async_request(request)


@dataclass
class Cluster:
    instances: list[Harness]
    leases: MemoryLeases
    engine: SimulatedEngine
    orchestrator: FakeOrchestrator
    board: Switchboard
    _scopes: list[trio.CancelScope] = field(default_factory=list)

    def kill(self, number: int) -> None:
        """Instance ``number`` dies at once: unreachable, its streams reset, its tasks gone,
        nothing it opened stopped, nothing more said to the engine or the orchestrator."""
        h = self.instances[number]
        h.engine_transport.refusing = True
        h.orchestrator_transport.refusing = True
        line = self.board.lines.pop(f"instance-{number}.test")
        line.reset()
        self._scopes[number].cancel()

    def owners(self, key: str) -> list[int]:
        """The instances running an engine session of ``key`` (not relaying it)."""
        return [
            number
            for number, h in enumerate(self.instances)
            if (channel := h.registry.get(key)) is not None
            and channel.session is not None
            and not isinstance(channel.upstream, RelayUpstream)
            and not self._scopes[number].cancel_called
        ]

    def relays(self, key: str) -> list[int]:
        return [
            number
            for number, h in enumerate(self.instances)
            if (channel := h.registry.get(key)) is not None
            and isinstance(channel.upstream, RelayUpstream)
            and not self._scopes[number].cancel_called
        ]


@asynccontextmanager
async def cluster(
    size: int,
    config: Config | None = None,
    engine: SimulatedEngine | None = None,
    orchestrator: FakeOrchestrator | None = None,
    *,
    leases: MemoryLeases | None = None,
) -> AsyncIterator[Cluster]:
    """``size`` instances of one cluster in memory, until the block ends."""
    base = config or default_config()
    engine = engine or SimulatedEngine(demo_segments(), durations=[2.0], backlog=6.0)
    orchestrator = orchestrator or FakeOrchestrator()
    leases = leases or MemoryLeases()
    board = Switchboard()
    hosts = {f"all://instance-{n}.test": board for n in range(size)}
    async with trio.open_nursery() as streams, trio.open_nursery() as nursery:
        made = Cluster([], leases, engine, orchestrator, board)
        done = trio.Event()

        async def run(number: int, *, task_status: trio.TaskStatus[Harness]) -> None:
            settings = base.replace(redis_url="memory:", instance_url=instance_url(number))
            with made._scopes[number]:
                async with harness(
                    settings, engine, orchestrator, mounts=dict(hosts), leases=leases
                ) as h:
                    task_status.started(h)
                    await done.wait()

        for number in range(size):
            made._scopes.append(trio.CancelScope())
            h = await nursery.start(run, number)
            board.lines[f"instance-{number}.test"] = StreamingASGITransport(
                h.app, streams, lambda path: path.startswith("/cluster/relay/")
            )
            made.instances.append(h)
        yield made
        done.set()
    # (the streams' nursery closes once every instance is down)


def demo_segments() -> list[bytes]:
    from .harness import small_media

    return small_media()
