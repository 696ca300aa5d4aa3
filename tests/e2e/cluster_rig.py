"""A cluster of real processes for end-to-end tests: redis-server, instances of ``trioproxy serve``
(:func:`~trioproxy.testing.instances.running_instance`), the simulated engine (MPEG-TS only, 2 s
segments) and the fake orchestrator served in this process, HAProxy with ``deploy/haproxy.cfg``
when asked for; and players on real sockets (HLS: :class:`~trioproxy.testing.players.Player`;
MPEG-TS: :class:`~trioproxy.testing.ts_reader.TsReader`).

Everything listens on 127.0.0.1; everything is stopped when the block ends.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

import httpx
import trio

from trioproxy.testing.balancers import HAProxy, running_haproxy
from trioproxy.testing.engine import SimulatedEngine, demo_media
from trioproxy.testing.instances import Instance, running_instance
from trioproxy.testing.orchestrator import FakeOrchestrator, Wire
from trioproxy.testing.orchestrator_wires import dig
from trioproxy.testing.redis_server import RedisServer, redis_server

from ..media import serve_asgi

__all__ = ["KEY", "LEASE", "Rig", "channel_id", "cluster_rig", "content_events"]

KEY = "e2e-cluster-key"
LEASE = 3.0
"""``TRIOPROXY_LEASE_SECONDS``: renewals every second, a dead owner replaced within 3 s."""


def channel_id(n: int) -> str:
    return hashlib.sha1(f"cluster channel {n}".encode()).hexdigest()


def content_events(orchestrator: FakeOrchestrator, key: str) -> list[str]:
    """The kinds of the events the orchestrator accepted about content ``key``, in order
    (v1 names an ended stream ``<key>|<session>``, v2 by its content id)."""
    kinds = []
    for event in orchestrator.events:
        if event.kind == "stream_started":
            about = dig(event.payload, "stream", "key")
        else:
            about = (
                event.payload.get("content_id")
                or str(event.payload.get("stream_id", "")).partition("|")[0]
            )
        if about == key:
            kinds.append(event.kind)
    return kinds


@dataclass
class Rig:
    engine: SimulatedEngine
    orchestrator: FakeOrchestrator
    redis: RedisServer
    settings: dict[str, str]
    instances: list[Instance]
    haproxy: HAProxy | None
    _stack: AsyncExitStack = field(repr=False)

    async def add_instance(self) -> Instance:
        """One more instance of the cluster, until the rig ends."""
        instance = await self._stack.enter_async_context(running_instance(self.settings))
        self.instances.append(instance)
        return instance

    def sessions_per_content(self) -> Counter[str]:
        return Counter(session.key for session in self.engine.sessions.values())

    def open_per_content(self) -> Counter[str]:
        return Counter(session.key for session in self.engine.open_sessions)


@asynccontextmanager
async def cluster_rig(
    size: int = 3, *, wire: Wire | None = None, haproxy: bool = False
) -> AsyncIterator[Rig]:
    """``size`` instances sharing one Redis, one engine and one orchestrator (speaking
    ``wire``); HAProxy in front of the first three with ``haproxy``."""
    engine = SimulatedEngine(demo_media(), durations=[2.0], formats="ts")
    async with (
        redis_server() as redis,
        serve_asgi(engine) as engine_url,
        AsyncExitStack() as stack,
    ):
        host, port = engine_url.removeprefix("http://").split(":")
        orchestrator = FakeOrchestrator(
            api_key=KEY,
            engines=[
                {"container_id": "box", "host": host, "port": int(port), "health_status": "healthy"}
            ],
            wire=wire or FakeOrchestrator().wire,
        )
        orchestrator_url = await stack.enter_async_context(serve_asgi(orchestrator))
        settings = {
            "TRIOPROXY_REDIS_URL": redis.url,
            "TRIOPROXY_LEASE_SECONDS": f"{LEASE:g}",
            "TRIOPROXY_REDIS_TIMEOUT": "1",
            "TRIOPROXY_UPSTREAM_MODE": "ts",
            "ORCHESTRATOR_URL": orchestrator_url,
            "API_KEY": KEY,
            "ACEXY_MAX_STREAMS_PER_ENGINE": "20",
            # Every player comes from 127.0.0.1 (or HAProxy there): no per-address caps.
            "TRIOPROXY_MAX_PLAYERS_PER_ADDRESS": "0",
            "TRIOPROXY_MAX_CHANNELS_PER_ADDRESS": "0",
            "TRIOPROXY_MAX_OPENING_PER_ADDRESS": "0",
            "TRIOPROXY_MAX_CONNECTIONS_PER_ADDRESS": "0",
            "TRIOPROXY_LOG_LEVEL": "INFO",
        }
        rig = Rig(engine, orchestrator, redis, settings, [], None, stack)
        async with trio.open_nursery() as starting:
            for _ in range(size):
                starting.start_soon(rig.add_instance)
        await _engines_known(rig)
        if haproxy:
            rig.haproxy = await stack.enter_async_context(
                running_haproxy([i.address for i in rig.instances[:3]])
            )
            async with httpx.AsyncClient() as client:
                with trio.fail_after(15):
                    for n in range(3):
                        await rig.haproxy.wait_until(client, f"trioproxy{n + 1}", "UP")
        yield rig


async def _engines_known(rig: Rig) -> None:
    """Wait until every instance read the engine from the orchestrator."""
    auth = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(timeout=5) as client:
        with trio.fail_after(20):
            for instance in rig.instances:
                while True:
                    status = await client.get(f"{instance.url}/proxy/status", headers=auth)
                    if status.status_code == 200 and status.json()["engines"]:
                        break
                    await trio.sleep(0.1)
