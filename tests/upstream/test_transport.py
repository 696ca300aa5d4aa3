"""UpstreamTransport: requests beyond the limit wait on a Trio limiter; every slot comes back;
one pool per origin."""

from __future__ import annotations

from collections.abc import Callable, Coroutine

import httpx
import pytest
import trio
import trio.testing

from trioproxy.upstream.transport import UpstreamTransport

Handler = Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]


class MockPools(UpstreamTransport):
    def __init__(self, handler: Handler, limit: int) -> None:
        super().__init__(limit, httpx.Limits())
        self.handler = handler
        self.pools_made = 0

    def make_pool(self, limits: httpx.Limits) -> httpx.AsyncBaseTransport:
        self.pools_made += 1
        return httpx.MockTransport(self.handler)


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
