"""The upstream transport: one connection pool per origin, behind one Trio limiter.

httpcore's connection pool scans all of its connections each time a request starts or ends, and
re-scans every queued request against them. One pool shared by hundreds of channels makes that
O(connections) work per request, O(queued × connections) once a burst goes past the pool's size:
at 300 channels the event loop stalled for seconds. So each origin (an engine, the orchestrator)
gets a pool of its own, holding only that origin's few connections, and requests beyond the total
bound wait on a :class:`trio.CapacityLimiter` (FIFO, O(1)) instead of in httpcore's queue.

Engines come and go (an orchestrator starts and retires them), so a pool no request has used
for :data:`POOL_IDLE` seconds is closed (its idle connections with it) and forgotten; a later
request to its origin makes a new one. A pool counts as used from a request's start until its
body is closed. Idle pools are looked for as requests start, at most every ``POOL_IDLE / 2``
seconds: a process making no upstream request at all keeps its pools until the next one.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
import trio

__all__ = ["POOL_IDLE", "UpstreamTransport"]

POOL_IDLE = 60.0
"""Seconds a pool may go unused before it is closed and forgotten."""
CLOSE_TIMEOUT = 1.0
"""Seconds closing one idle pool may take (its connections are idle: no wait in practice)."""

_Origin = tuple[bytes, bytes, int | None]


@dataclass(eq=False, slots=True)
class _Pool:
    transport: httpx.AsyncBaseTransport
    last_used: float
    users: int = 0
    """Requests started and not done (their body not closed yet)."""


class _ReleasingStream(httpx.AsyncByteStream):
    """A response body that gives the request's slot back once it is closed."""

    def __init__(self, inner: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._inner = inner
        self._release: Callable[[], None] | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            if self._release is not None:
                release, self._release = self._release, None
                release()


class UpstreamTransport(httpx.AsyncBaseTransport):
    """At most ``limit`` requests in flight (from send until the body is closed), each origin
    with a pool of its own sized by ``per_origin``, closed once idle for :data:`POOL_IDLE`."""

    def __init__(self, limit: int, per_origin: httpx.Limits) -> None:
        self.limiter = trio.CapacityLimiter(limit)
        self._per_origin = per_origin
        self._pools: dict[_Origin, _Pool] = {}
        self._ssl_context: ssl.SSLContext | None = None
        self._next_sweep = -math.inf

    def pool(self, url: httpx.URL) -> httpx.AsyncBaseTransport:
        return self._pool(url).transport

    def _pool(self, url: httpx.URL) -> _Pool:
        origin = (url.raw_scheme, url.raw_host, url.port)
        pool = self._pools.get(origin)
        if pool is None:
            pool = self._pools[origin] = _Pool(
                self.make_pool(self._per_origin), trio.current_time()
            )
        return pool

    def make_pool(self, limits: httpx.Limits) -> httpx.AsyncBaseTransport:
        # Building an SSL context loads the CA bundle (~0.1 s, ~1 MB): one serves every pool.
        if self._ssl_context is None:
            self._ssl_context = httpx.create_ssl_context()
        return httpx.AsyncHTTPTransport(verify=self._ssl_context, limits=limits)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        pool = self._pool(request.url)
        pool.users += 1
        token = object()

        def done() -> None:
            self.limiter.release_on_behalf_of(token)
            pool.users -= 1
            pool.last_used = trio.current_time()

        try:
            await self._close_idle()
            await self.limiter.acquire_on_behalf_of(token)
        except BaseException:
            pool.users -= 1
            raise
        try:
            response = await pool.transport.handle_async_request(request)
        except BaseException:
            done()
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_ReleasingStream(response.stream, done),
            extensions=response.extensions,
        )

    async def _close_idle(self) -> None:
        """Close and forget the pools unused for :data:`POOL_IDLE` (looked for at most every
        ``POOL_IDLE / 2`` seconds)."""
        now = trio.current_time()
        if now < self._next_sweep:
            return
        self._next_sweep = now + POOL_IDLE / 2
        idle = [
            origin
            for origin, pool in self._pools.items()
            if not pool.users and now - pool.last_used >= POOL_IDLE
        ]
        for origin in idle:
            transport = self._pools.pop(origin).transport
            # Forgotten already: closed even if this request is cancelled meanwhile.
            with trio.move_on_after(CLOSE_TIMEOUT, shield=True):
                await transport.aclose()

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.transport.aclose()
