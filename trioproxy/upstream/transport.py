"""The upstream transport: one connection pool per origin, behind one Trio limiter.

httpcore's connection pool scans all of its connections each time a request starts or ends, and
re-scans every queued request against them. One pool shared by hundreds of channels makes that
O(connections) work per request, O(queued × connections) once a burst goes past the pool's size:
at 300 channels the event loop stalled for seconds. So each origin (an engine, the orchestrator)
gets a pool of its own, holding only that origin's few connections, and requests beyond the total
bound wait on a :class:`trio.CapacityLimiter` (FIFO, O(1)) instead of in httpcore's queue.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import httpx
import trio

__all__ = ["UpstreamTransport"]


class _ReleasingStream(httpx.AsyncByteStream):
    """A response body that gives the request's slot back once it is closed."""

    def __init__(
        self, inner: httpx.AsyncByteStream, limiter: trio.CapacityLimiter, token: object
    ) -> None:
        self._inner = inner
        self._limiter = limiter
        self._token: object | None = token

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            if self._token is not None:
                token, self._token = self._token, None
                self._limiter.release_on_behalf_of(token)


class UpstreamTransport(httpx.AsyncBaseTransport):
    """At most ``limit`` requests in flight (from send until the body is closed), each origin
    with a pool of its own sized by ``per_origin``."""

    def __init__(self, limit: int, per_origin: httpx.Limits) -> None:
        self.limiter = trio.CapacityLimiter(limit)
        self._per_origin = per_origin
        self._pools: dict[tuple[bytes, bytes, int | None], httpx.AsyncBaseTransport] = {}
        self._ssl_context: ssl.SSLContext | None = None

    def pool(self, url: httpx.URL) -> httpx.AsyncBaseTransport:
        origin = (url.raw_scheme, url.raw_host, url.port)
        pool = self._pools.get(origin)
        if pool is None:
            pool = self._pools[origin] = self.make_pool(self._per_origin)
        return pool

    def make_pool(self, limits: httpx.Limits) -> httpx.AsyncBaseTransport:
        # Building an SSL context loads the CA bundle (~0.1 s, ~1 MB): one serves every pool.
        if self._ssl_context is None:
            self._ssl_context = httpx.create_ssl_context()
        return httpx.AsyncHTTPTransport(verify=self._ssl_context, limits=limits)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        pool = self.pool(request.url)
        token = object()
        await self.limiter.acquire_on_behalf_of(token)
        try:
            response = await pool.handle_async_request(request)
        except BaseException:
            self.limiter.release_on_behalf_of(token)
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_ReleasingStream(response.stream, self.limiter, token),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.aclose()
