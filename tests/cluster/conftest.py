"""One store contract, two stores: each contract test runs against :class:`MemoryLeases` on the
autojump clock and against :class:`RedisLeases` on a real ``redis-server`` and the real clock
(skipped without ``redis-server`` unless ``TRIOPROXY_TEST_REQUIRE_TOOLS=1``).

Times are in units of ``store.unit``: 1 virtual second in memory, 0.3 real seconds on Redis. What
must lapse gets a short TTL and a longer wait; what must stay, a long TTL; nothing asserts how
fast Redis answers.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import trio
import trio.testing

from tests.tools import require_tools
from trioproxy.cluster import Leases
from trioproxy.cluster.memory import MemoryLeases
from trioproxy.cluster.redis import connect
from trioproxy.testing.redis_server import RedisServer, redis_server

needs_redis = require_tools("redis-server")


@dataclass
class Store:
    """A store under test, with a way to take it down and bring it back."""

    leases: Leases
    unit: float
    memory: MemoryLeases | None = None
    server: RedisServer | None = None

    async def wait(self, units: float) -> None:
        await trio.sleep(units * self.unit)

    async def outage(self) -> None:
        if self.memory is not None:
            self.memory.down = True
        else:
            assert self.server is not None
            await self.server.stop()

    async def restart(self) -> None:
        """Back after an outage, with everything lost."""
        if self.memory is not None:
            self.memory.forget()
            self.memory.down = False
        else:
            assert self.server is not None
            await self.server.start()


@pytest.fixture(params=["memory", pytest.param("redis", marks=needs_redis)])
def kind(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def clock(kind: str) -> trio.testing.MockClock | None:
    """The autojump clock for the in-memory store; the real clock for Redis."""
    return trio.testing.MockClock(autojump_threshold=0) if kind == "memory" else None


@pytest.fixture
async def store(kind: str, clock: trio.testing.MockClock | None) -> AsyncIterator[Store]:
    if kind == "memory":
        memory = MemoryLeases()
        yield Store(memory, 1.0, memory=memory)
        return
    async with redis_server() as server, connect(server.url, call_timeout=2.0) as leases:
        yield Store(leases, 0.3, server=server)


@pytest.fixture
async def redis() -> AsyncIterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server on PATH")
    async with redis_server() as server:
        yield server
