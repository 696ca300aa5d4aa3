"""An httpx transport to an ASGI app whose responses stream, for in-memory tests.

``httpx.ASGITransport`` runs the app to its end and buffers the whole body, which an engine's
continuous MPEG-TS stream never reaches. :class:`StreamingASGITransport` runs each request's
app in a task of a nursery its owner holds and hands the body on as the app sends it, one
message at a time: an app that sends faster than the client reads waits, as on a socket.
Closing the response (the client leaves) tells the app ``http.disconnect`` and cancels it;
:meth:`StreamingASGITransport.reset` breaks every response still open, as a process that dies
resets its connections: their next read fails with ``httpx.ReadError``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import trio
from hypercorn.typing import (
    ASGIReceiveCallable,
    ASGIReceiveEvent,
    ASGISendCallable,
    ASGISendEvent,
    HTTPScope,
    Scope,
)

__all__ = ["App", "StreamingASGITransport"]

App = Callable[[Scope, ASGIReceiveCallable, ASGISendCallable], Awaitable[None]]
"""An ASGI application, typed with Hypercorn's scope and callables."""


class _Exchange:
    """One request to the app: its task, and the body on its way to the client."""

    def __init__(self) -> None:
        self.scope = trio.CancelScope()
        self.started = trio.Event()
        self.gone = trio.Event()
        self.responded = False
        self.status = 500
        self.headers: list[tuple[bytes, bytes]] = []
        self.error: BaseException | None = None
        self.broken = False
        self.send, self.receive = trio.open_memory_channel[bytes](0)

    def close(self, *, broken: bool = False) -> None:
        self.broken = self.broken or broken
        self.gone.set()
        self.scope.cancel()
        self.send.close()


class _Body(httpx.AsyncByteStream):
    def __init__(self, exchange: _Exchange, owner: StreamingASGITransport) -> None:
        self._exchange = exchange
        self._owner = owner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        exchange = self._exchange
        try:
            async for chunk in exchange.receive:
                yield chunk
        except trio.ClosedResourceError:
            raise httpx.ReadError("the response was closed") from None
        if exchange.broken or exchange.error is not None:
            raise httpx.ReadError("connection reset by the app's host")

    async def aclose(self) -> None:
        self._exchange.close()
        self._exchange.receive.close()
        self._owner.live.discard(self._exchange)
        await trio.lowlevel.checkpoint()


class StreamingASGITransport(httpx.AsyncBaseTransport):
    """Requests to ``app`` whose path ``streams``, each run in a task of ``nursery``, their
    bodies streamed; the others through ``httpx.ASGITransport``, in the caller's task."""

    def __init__(
        self, app: App, nursery: trio.Nursery, streams: Callable[[str], bool] = lambda path: True
    ) -> None:
        self.app = app
        self._nursery = nursery
        self._streams = streams
        self._buffered = httpx.ASGITransport(app)  # type: ignore[arg-type]
        self.live: set[_Exchange] = set()

    def reset(self) -> None:
        """Break every response still open: its app is cancelled, its next read fails."""
        for exchange in list(self.live):
            exchange.close(broken=True)
        self.live.clear()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not self._streams(request.url.path):
            return await self._buffered.handle_async_request(request)
        body = await request.aread()
        scope: HTTPScope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": request.url.scheme,
            "path": request.url.path,
            "raw_path": request.url.raw_path.split(b"?")[0],
            "query_string": request.url.query,
            "root_path": "",
            "headers": [(k.lower(), v) for k, v in request.headers.raw],
            "client": ("127.0.0.1", 123),
            "server": (request.url.host, request.url.port),
            "state": {},  # type: ignore[typeddict-item]
            "extensions": {},
        }
        exchange = _Exchange()
        self.live.add(exchange)
        self._nursery.start_soon(self._run, exchange, scope, body)
        try:
            await exchange.started.wait()
        except BaseException:
            exchange.close()
            self.live.discard(exchange)
            raise
        if not exchange.responded:
            self.live.discard(exchange)
            raise exchange.error or RuntimeError("the app ended without a response")
        return httpx.Response(
            exchange.status,
            headers=exchange.headers,
            stream=_Body(exchange, self),
            request=request,
        )

    async def _run(self, exchange: _Exchange, scope: HTTPScope, body: bytes) -> None:
        requested = False

        async def receive() -> ASGIReceiveEvent:
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": body, "more_body": False}
            await exchange.gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: ASGISendEvent) -> None:
            event: Any = message
            if event["type"] == "http.response.start":
                exchange.responded = True
                exchange.status = event["status"]
                exchange.headers = list(event.get("headers", []))
                exchange.started.set()
                return
            if event["type"] != "http.response.body":
                return
            chunk = event.get("body", b"")
            if chunk and scope["method"] != "HEAD":
                try:
                    await exchange.send.send(chunk)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    exchange.gone.set()
                    await trio.sleep_forever()  # the client left: cancelled by its close
            if not event.get("more_body", False):
                exchange.send.close()

        with exchange.scope:
            try:
                await self.app(scope, receive, send)
            except Exception as exc:
                exchange.error = exc
        exchange.started.set()
        exchange.send.close()
