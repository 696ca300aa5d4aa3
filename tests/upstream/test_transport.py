"""UpstreamTransport: requests beyond the limit wait on a Trio limiter; every slot comes back;
one pool per origin, closed and forgotten once unused for a while."""

from __future__ import annotations

from collections.abc import Callable, Coroutine

import httpx
import pytest
import trio
import trio.testing

from trioproxy.upstream.transport import UpstreamTransport

Handler = Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]


class MockPool(httpx.MockTransport):
    def __init__(self, handler: Handler, host: str) -> None:
        super().__init__(handler)
        self.host = host
        self.closed_at: float | None = None

    async def aclose(self) -> None:
        self.closed_at = trio.current_time()
        await super().aclose()


class MockPools(UpstreamTransport):
    def __init__(self, handler: Handler, limit: int) -> None:
        super().__init__(limit, httpx.Limits())
        self.handler = handler
        self.pools_made = 0
        self.made: list[MockPool] = []

    def make_pool(self, limits: httpx.Limits) -> httpx.AsyncBaseTransport:
        self.pools_made += 1
        self.made.append(MockPool(self.handler, ""))
        return self.made[-1]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        made = self.pools_made
        response = await super().handle_async_request(request)
        if self.pools_made > made:
            self.made[-1].host = request.url.host
        return response


def mock_transport(handler: Handler, limit: int) -> MockPools:
    return MockPools(handler, limit)


async def test_requests_beyond_the_limit_wait_and_slots_come_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    in_flight = 0
    peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await trio.sleep(1.0)
        in_flight -= 1
        return httpx.Response(200, content=b"x" * 10)

    transport = mock_transport(handler, 2)
    async with httpx.AsyncClient(transport=transport) as client:

        async def get() -> None:
            response = await client.get("http://engine.test/")
            assert response.content == b"x" * 10

        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(get)
    assert peak == 2
    assert trio.current_time() == 3.0  # 5 requests of 1 s, 2 at a time
    assert transport.limiter.borrowed_tokens == 0


async def test_a_failed_request_gives_its_slot_back() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    transport = mock_transport(handler, 1)
    async with httpx.AsyncClient(transport=transport) as client:
        for _ in range(2):
            with pytest.raises(httpx.ConnectError):
                await client.get("http://engine.test/")
    assert transport.limiter.borrowed_tokens == 0


async def test_each_origin_gets_its_own_pool() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200)

    transport = mock_transport(handler, 4)
    async with httpx.AsyncClient(transport=transport) as client:
        for url in (
            "http://a.test:1/x",
            "http://a.test:1/y",
            "http://a.test:2/",
            "http://b.test:1/",
        ):
            await client.get(url)
    assert transport.pools_made == 3


async def test_a_pool_unused_for_a_minute_is_closed_and_used_ones_are_kept(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        await trio.lowlevel.checkpoint()
        return httpx.Response(200, content=b"x")

    transport = mock_transport(handler, 4)
    async with httpx.AsyncClient(transport=transport) as client:
        await client.get("http://gone.test/")  # an engine used once, at 0 s
        async with client.stream("GET", "http://long.test/") as held:  # a body open 100 s
            for _ in range(10):  # an engine used every 10 s
                await trio.sleep(10.0)
                await client.get("http://busy.test/")
            closed = {pool.host: pool.closed_at for pool in transport.made}
            assert closed == {"gone.test": 60.0, "long.test": None, "busy.test": None}
            await held.aread()
        assert transport.pools_made == 3
        # Unused since the body closed at 100 s: gone once 60 s have passed.
        await trio.sleep(60.0)
        await client.get("http://busy.test/")
        closed = {pool.host: pool.closed_at for pool in transport.made}
        assert closed == {"gone.test": 60.0, "long.test": 160.0, "busy.test": None}
        # An origin whose pool was closed gets a new one.
        assert (await client.get("http://gone.test/")).content == b"x"
        assert transport.pools_made == 4
    assert transport.limiter.borrowed_tokens == 0
