"""One client connection on the lean path: requests read, answered from memory, or handed on.

:func:`serve_connection` is what the accept loop runs for each connection (and the in-memory
harness for each of its connections). It reads request heads itself and answers those the lean
path takes (:meth:`~.hot.LeanPath.take`), each answer one gather write (:meth:`~..connections.
GuardedStream.send_pieces`) of its head and body, in the order the requests came — pipelined
requests included — and keeps the connection open for the next while the client allows.

At the first request it does not take, the connection moves to Hypercorn for good, with every
byte read and not yet answered (that request's head, and whatever came after it): Hypercorn's
handler then reads them first, as if they had just arrived, and answers that request and all
later ones as the app always did. A connection never comes back: Hypercorn owns its framing
from there (bodies, upgrades, MPEG-TS responses). A player's connection starts with
``/ace/getstream`` or ``/ace/manifest.m3u8`` (taken, as redirects to the playlist) and then
asks for the playlist and segments on the same connection: it stays lean for its whole life.

While a playlist waits for a channel's first segments, the connection is read too: a client
that leaves ends the wait (as a disconnect cancels a request in the app), and bytes of
requests pipelined behind it are kept for later. While a request head is awaited (between
requests too), a connection is idle: it closes after Hypercorn's ``keep_alive_timeout`` (the
accept loop's guard closes one whose head is late sooner), or at once at shutdown
(:meth:`Idle.close_all`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from email.utils import formatdate
from typing import Any, Protocol

import trio
from hypercorn.utils import parse_socket_addr

from ...channels.channel import Channel
from ...errors import ProxyError
from ..connections import GuardedStream
from ..playlists import Reply, error_reply
from .hot import LeanPath, Taken
from .parser import MAX_HEAD, head_end, parse_head

__all__ = ["Client", "Handed", "Idle", "serve_connection"]

log = logging.getLogger(__name__)

MAX_RECV = 64 * 1024
HandOff = Callable[[Any], Awaitable[None]]
"""Hypercorn's handler of a connection (its ``TCPServer``)."""

_REASONS = {
    200: b"OK",
    204: b"No Content",
    302: b"Found",
    400: b"Bad Request",
    401: b"Unauthorized",
    403: b"Forbidden",
    404: b"Not Found",
    429: b"Too Many Requests",
    500: b"Internal Server Error",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
}


class Client(Protocol):
    """A client connection as the lean path needs it: a stream, and its socket's addresses."""

    socket: Any

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray: ...
    async def send_all(self, data: bytes | bytearray | memoryview) -> None: ...
    async def wait_send_all_might_not_block(self) -> None: ...
    async def send_eof(self) -> None: ...
    async def aclose(self) -> None: ...


class Idle:
    """The connections waiting between requests: closed after ``timeout`` seconds idle, and all
    at once by :meth:`close_all` (at shutdown)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.closing = False
        self._scopes: set[trio.CancelScope] = set()

    @contextmanager
    def waiting(self) -> Iterator[trio.CancelScope]:
        """A scope for one wait between requests: cancelled when it lasts ``timeout``, or by
        :meth:`close_all`."""
        with trio.CancelScope(deadline=trio.current_time() + self.timeout) as scope:
            self._scopes.add(scope)
            try:
                yield scope
            finally:
                self._scopes.discard(scope)

    def close_all(self) -> None:
        self.closing = True
        for scope in self._scopes:
            scope.cancel()


class Handed(trio.abc.HalfCloseableStream):
    """A connection handed to Hypercorn: the bytes read and not answered come first."""

    def __init__(self, stream: Client, data: bytes) -> None:
        self.stream = stream
        self.socket = stream.socket  # Hypercorn reads the addresses from it
        self._data = data

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if self._data:
            data, self._data = self._data, b""
            await trio.lowlevel.checkpoint()
            return data
        return await self.stream.receive_some(max_bytes)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self.stream.send_eof()

    async def aclose(self) -> None:
        await self.stream.aclose()


class _Gone(Exception):
    """The client closed its connection while its request waited."""


async def serve_connection(lean: LeanPath, idle: Idle, hand_off: HandOff, stream: Client) -> None:
    """Serve ``stream`` (a client connection with a ``socket``) until the client closes it or
    asks to, handing it to ``hand_off`` at the first request the lean path does not take."""
    socket = stream.socket
    peer = parse_socket_addr(socket.family, socket.getpeername()) or ("", 0)
    buffer = bytearray()
    while True:
        end = head_end(buffer)
        if end is None:
            if len(buffer) > MAX_HEAD or idle.closing:
                break
            data = await _receive(stream, idle)
            if not data:
                return  # the client closed (or idled out, or shutdown)
            buffer += data
            continue
        head = parse_head(bytes(buffer[:end]))
        taken = None if head is None else lean.take(head, peer)
        if taken is None:
            break
        with lean.holding(taken) as held:
            if not held:
                break
            with trio.CancelScope() as request:
                reply = await _answer(lean, taken, stream, buffer, request)
        if request.cancelled_caught:
            return  # the client left while its request waited
        del buffer[:end]
        assert head is not None
        try:
            await _send(stream, reply, head.method == "HEAD", head.keep_alive)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return  # the client left (or was cut as a stalled writer) mid-answer
        if not head.keep_alive:
            return
        if buffer:
            await trio.lowlevel.checkpoint()  # pipelined requests: let other connections run
    await hand_off(Handed(stream, bytes(buffer)))


async def _receive(stream: Client, idle: Idle) -> bytes | bytearray:
    """The next bytes of a request head; b"" when the client closed, or when ``idle`` times out
    (the accept loop's guard times heads sooner) or closes."""
    try:
        with idle.waiting():
            return await stream.receive_some(MAX_RECV)
    except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError):
        return b""
    return b""  # idled out


async def _answer(
    lean: LeanPath, taken: Taken, stream: Client, buffer: bytearray, request: trio.CancelScope
) -> Reply:
    async def wait(channel: Channel) -> None:
        # Waiting for the first segments: read the connection meanwhile, so that a client
        # that leaves ends the wait, and bytes pipelined behind are kept for later.
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                while len(buffer) <= MAX_HEAD:
                    try:
                        data = await stream.receive_some(MAX_RECV)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        data = b""
                    if not data:
                        request.cancel()
                        return
                    buffer.extend(data)
                await trio.sleep_forever()

            nursery.start_soon(watch)
            await channel.wait_ready()
            nursery.cancel_scope.cancel()

    try:
        return await lean.answer(taken, wait)
    except ProxyError as error:
        return error_reply(error)
    except Exception:
        log.exception("the lean path failed to answer %s %s", taken.head.method, taken.head.path)
        return error_reply(ProxyError("the proxy failed to answer this request"))


_dated: list[Any] = [0, b""]


def _date() -> bytes:
    """The ``date`` header's value, as Hypercorn writes it (made once a second)."""
    now = int(time.time())
    if _dated[0] != now:
        _dated[:] = [now, formatdate(now, usegmt=True).encode()]
    return bytes(_dated[1])


async def _send(stream: Client, reply: Reply, head: bool, keep_alive: bool) -> None:
    status, headers, body = reply
    reason = _REASONS.get(status, b"")
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, reason)]
    lines += [b"%s: %s\r\n" % pair for pair in headers]
    lines.append(b"content-length: %d\r\ndate: %s\r\n" % (len(body), _date()))
    if not keep_alive:
        lines.append(b"connection: close\r\n")
    lines.append(b"\r\n")
    pieces = [b"".join(lines)] if head or not body else [b"".join(lines), body]
    if isinstance(stream, GuardedStream):
        await stream.send_pieces(pieces)
    else:
        await stream.send_all(b"".join(pieces))
