"""The proxy's connection handler reached over HTTP/1.1 bytes in memory.

:class:`WireTransport` is an httpx transport whose connections (httpcore's pool, speaking real
HTTP/1.1) are in-memory pipes to a server-side connection handler — the very handler the accept
loop runs for each socket (:func:`trioproxy.http.server.connection_handler`): the lean path
first, then Hypercorn and the app for what the lean path hands on. No sockets, so it runs on
whatever clock the Trio run has.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpcore
import httpx
import trio

__all__ = ["WireTransport"]

Handler = Callable[[Any], Awaitable[None]]
PEER = ("127.0.0.1", 123)
"""The client's address as the server sees it (as ``httpx.ASGITransport`` says)."""


class _Pipe:
    """Bytes one way: written by one end, read by the other; unbounded (tests only)."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.eof = False
        self.reader_gone = False
        self._arrived = trio.Event()

    @property
    def readable(self) -> bool:
        return bool(self.data) or self.eof

    async def put(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()
        if self.eof:
            raise trio.ClosedResourceError("this end is closed")
        if self.reader_gone:
            raise trio.BrokenResourceError("the other end closed the connection")
        self.data += data
        self._arrived.set()

    def close(self) -> None:
        self.eof = True
        self._arrived.set()

    async def get(self, max_bytes: int | None) -> bytes:
        if self.reader_gone:
            raise trio.ClosedResourceError("this end is closed")
        while not self.readable:
            self._arrived = trio.Event()
            await self._arrived.wait()
        if self.data:
            await trio.lowlevel.checkpoint()
        size = len(self.data) if max_bytes is None else max_bytes
        chunk = bytes(self.data[:size])
        del self.data[:size]
        return chunk


class _Socket:
    """What the server reads of its socket: the family and the two addresses."""

    family = socket.AF_INET

    def __init__(self, peer: tuple[str, int]) -> None:
        self._peer = peer

    def getpeername(self) -> tuple[str, int]:
        return self._peer

    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", 80)

    def fileno(self) -> int:
        return -1


class _ServerEnd(trio.abc.HalfCloseableStream):
    def __init__(self, incoming: _Pipe, outgoing: _Pipe, peer: tuple[str, int]) -> None:
        self.incoming, self.outgoing = incoming, outgoing
        self.socket = _Socket(peer)
        self.scope = trio.CancelScope()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        data = await self.incoming.get(max_bytes)
        if not data:
            # The client left: close, as the accept loop's guarded stream does (Hypercorn
            # would keep the connection until its keep-alive timeout).
            self.outgoing.close()
            self.scope.cancel()
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.outgoing.put(data)

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def send_eof(self) -> None:
        await trio.lowlevel.checkpoint()
        self.outgoing.close()

    async def aclose(self) -> None:
        self.outgoing.close()
        self.incoming.reader_gone = True
        await trio.lowlevel.checkpoint()


class _ClientEnd(httpcore.AsyncNetworkStream):
    def __init__(self, incoming: _Pipe, outgoing: _Pipe) -> None:
        self.incoming, self.outgoing = incoming, outgoing

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        try:
            return await self.incoming.get(max_bytes)
        except trio.ClosedResourceError as exc:
            raise httpcore.ReadError(str(exc)) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        try:
            await self.outgoing.put(buffer)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise httpcore.WriteError(str(exc)) from exc

    async def aclose(self) -> None:
        self.outgoing.close()
        self.incoming.reader_gone = True
        await trio.lowlevel.checkpoint()

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            return self.incoming.readable
        return None


class _Backend(httpcore.AsyncNetworkBackend):
    def __init__(self, handler: Handler, nursery: trio.Nursery) -> None:
        self.handler = handler
        self.nursery = nursery
        self.connections = 0
        self.serving = 0

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        await trio.lowlevel.checkpoint()
        to_server, to_client = _Pipe(), _Pipe()
        server = _ServerEnd(to_server, to_client, PEER)
        self.connections += 1
        self.nursery.start_soon(self._serve, server)
        return _ClientEnd(to_client, to_server)

    async def _serve(self, server: _ServerEnd) -> None:
        self.serving += 1
        try:
            with server.scope:
                await self.handler(server)
        finally:
            self.serving -= 1
            await trio.aclose_forcefully(server)

    async def sleep(self, seconds: float) -> None:
        await trio.sleep(seconds)


_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
)


class _Body(httpx.AsyncByteStream):
    def __init__(self, stream: Any) -> None:
        self.stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for part in self.stream:
                yield part
        except httpcore.ReadError as exc:
            raise httpx.ReadError(str(exc)) from exc
        except httpcore.RemoteProtocolError as exc:
            raise httpx.RemoteProtocolError(str(exc)) from exc

    async def aclose(self) -> None:
        await self.stream.aclose()


class WireTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 over in-memory connections to ``handler``, whose tasks run in ``nursery``."""

    def __init__(self, handler: Handler, nursery: trio.Nursery) -> None:
        self.backend = _Backend(handler, nursery)
        self.pool = httpcore.AsyncConnectionPool(network_backend=self.backend, max_connections=64)

    async def open_raw(self) -> httpcore.AsyncNetworkStream:
        """A new connection for raw bytes (``write``, ``read``: b"" once the server closed)."""
        return await self.backend.connect_tcp("proxy.test", 80)

    @property
    def connections(self) -> int:
        """Connections opened so far."""
        return self.backend.connections

    @property
    def serving(self) -> int:
        """Connections whose server side still runs."""
        return self.backend.serving

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        try:
            response = await self.pool.handle_async_request(core)
        except Exception as exc:
            for core_error, error in _ERRORS:
                if isinstance(exc, core_error):
                    raise error(str(exc), request=request) from exc
            raise
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_Body(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self.pool.aclose()
