"""Long response bodies written straight to the client's socket: the lean path of TS players.

Through Hypercorn, every body message of a response goes through its HTTP/1.1 protocol: h11
frames it as a chunk (a joined copy of the data) and the write passes its events, send lock and
cancel scopes — for each player, for each segment. A TS player's body is the very same segments
for every player, so on a connection of our own accept loop (:func:`serving`) speaking HTTP/1.x,
:class:`DirectBody` takes over once the response head went out through Hypercorn:

- each piece of data is one gather write (``writev``) of the chunk-size line, the data itself
  (the stream's shared copy, never copied again) and the CRLF after it, without a trip through
  the scheduler when the socket takes it all (the usual case, a segment fits a socket buffer);
- when the socket takes only part of it, the rest follows as the socket drains, and a write
  that is not done within :attr:`DirectBody.send_timeout` closes the connection;
- :meth:`DirectBody.write_now` never waits, so any task may call it (the TS stream's writer, for
  every player that keeps up): what the socket did not take is owed, and written first by the
  next :meth:`DirectBody.write`;
- a closed or reset connection raises :class:`trio.BrokenResourceError` (or
  :class:`trio.ClosedResourceError`) at once.

The end of the body is :meth:`DirectBody.end` (the terminating chunk, HTTP/1.1; nothing,
HTTP/1.0, where the body ends with the connection). Hypercorn was never told the body ended, so
once the response task returns, it closes the connection (as it does after a body that stops
short): the connection is never reused, and nothing else is ever written to it. The head does
not say ``connection: close``: h11 would then take any byte the client sends afterwards (a
request pipelined behind this one) for a protocol error and drop the connection mid-stream; a
pipelined request now waits unanswered until the connection closes.

HTTP/1.1 responses are chunked, not delimited by the connection's close (which HTTP/1.1 also
allows): a player then tells a stream that ended (the terminating chunk) from one that was cut.

HTTP/2 streams, and requests that do not come through :func:`serving` (an in-memory transport),
keep the ASGI send: :func:`direct_body` is None for them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import trio
from hypercorn.typing import HTTPScope

from .connections import GuardedStream

__all__ = ["DirectBody", "direct_body", "serving"]


_CONNECTION: ContextVar[GuardedStream | None] = ContextVar("trioproxy_connection", default=None)
_CRLF = b"\r\n"
_LAST_CHUNK = b"0\r\n\r\n"


@contextmanager
def serving(stream: GuardedStream) -> Iterator[None]:
    """Run the server's handler of ``stream`` inside this block: the tasks it starts for requests
    (which copy this task's context) can then write their bodies to ``stream`` directly."""
    token = _CONNECTION.set(stream)
    try:
        yield
    finally:
        _CONNECTION.reset(token)


def direct_body(scope: HTTPScope, send_timeout: float) -> DirectBody | None:
    """A direct body for the response to ``scope``, when its connection allows one."""
    stream = _CONNECTION.get()
    version = scope["http_version"]
    if stream is None or stream.closed or version not in ("1.1", "1.0"):
        return None
    return DirectBody(stream, chunked=version == "1.1", send_timeout=send_timeout)


class DirectBody:
    """Writes a response's body to ``stream`` itself, after its head went out through the server."""

    __slots__ = ("_owed", "chunked", "send_timeout", "stream")

    def __init__(self, stream: GuardedStream, *, chunked: bool, send_timeout: float) -> None:
        self.stream = stream
        self.chunked = chunked
        """Chunked framing (HTTP/1.1); otherwise the body is the bytes as they are (HTTP/1.0)."""
        self.send_timeout = send_timeout
        """Seconds one :meth:`write` may take when the socket does not take it all at once."""
        self._owed: list[memoryview] = []
        """What :meth:`write_now` could not write."""

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        """Headers the response head must carry for this body."""
        return [(b"transfer-encoding", b"chunked")] if self.chunked else []

    async def write(self, data: bytes) -> None:
        """Write what is owed, then ``data`` as the next piece of the body (nothing for empty
        ``data``: an empty chunk would be the chunked body's end)."""
        if self._owed:
            owed, self._owed = self._owed, []
            await self._write_rest(owed, 0)
        if not data:
            return
        pieces, total = self._framed(data)
        sent = self._writev(pieces)
        if sent < total:
            await self._write_rest(pieces, sent)

    def write_now(self, data: bytes) -> bool:
        """Write ``data`` as the next piece of the body as far as the socket takes it at once,
        never waiting; False when some of it is owed (:meth:`write` writes it first)."""
        if self._owed or not data:
            if data:
                self._owed += map(memoryview, self._framed(data)[0])
            return not self._owed
        pieces, total = self._framed(data)
        sent = self._writev(pieces)
        if sent < total:
            self._owed = _after(pieces, sent)
            return False
        return True

    def _framed(self, data: bytes) -> tuple[list[bytes], int]:
        if self.chunked:
            size = b"%x\r\n" % len(data)
            return [size, data, _CRLF], len(size) + len(data) + 2
        return [data], len(data)

    async def end(self) -> None:
        """End the body (the server then closes the connection)."""
        if self.chunked:
            sent = self._writev([_LAST_CHUNK])
            if sent < len(_LAST_CHUNK):
                await self._write_rest([_LAST_CHUNK], sent)

    async def _write_rest(self, pieces: list[bytes] | list[memoryview], sent: int) -> None:
        """The socket took ``sent`` bytes of ``pieces``: write the rest as it drains."""
        views = _after(pieces, sent)
        with trio.move_on_after(self.send_timeout) as waited:
            while views:
                await trio.lowlevel.wait_writable(self.stream.socket)
                views = _after(views, self._writev(views))
        if waited.cancelled_caught:
            raise self.stream.stalled(self.send_timeout)

    def _writev(self, pieces: list[bytes] | list[memoryview]) -> int:
        """One non-blocking gather write: the bytes the socket took (0: none fit)."""
        # The descriptor is looked up right before the write: once the socket is closed it
        # is -1 (the number may belong to another connection by then).
        fd = self.stream.socket.fileno()
        if fd < 0:
            raise trio.ClosedResourceError("the connection is closed")
        try:
            return os.writev(fd, pieces)
        except BlockingIOError:
            return 0
        except OSError as exc:  # reset, broken pipe: the client is gone
            self.stream.close_now()
            raise trio.BrokenResourceError(f"the client is gone: {exc}") from exc


def _after(pieces: list[bytes] | list[memoryview], sent: int) -> list[memoryview]:
    """What is left of ``pieces`` once their first ``sent`` bytes are written."""
    rest: list[memoryview] = []
    for piece in pieces:
        if sent >= len(piece):
            sent -= len(piece)
            continue
        rest.append(memoryview(piece)[sent:])
        sent = 0
    return rest
