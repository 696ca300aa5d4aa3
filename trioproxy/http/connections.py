"""Client connections: admitted under caps, timed while their request head arrives, closed when
they stop reading, and all closed at shutdown.

- :class:`Connections` admits each accepted socket: under the total cap and the per-address
  cap (counted as the player caps count: an IPv6 peer by its /64, an IPv4-mapped one as its
  IPv4 address), or refused with a canned 503. At the total cap, the oldest connection still
  waiting for its request head is closed to make room (it has cost nothing yet), so
  connections that send nothing cannot lock players out.
- :class:`GuardedStream` is what Hypercorn reads and writes. A request head must arrive within
  ``header_timeout`` of its first byte (or of connecting); once a head is in, nothing times the
  reads, so a player receiving a long response while sending nothing is never cut. A write that
  makes no progress for ``send_timeout`` closes the socket, which also ends a write Hypercorn
  shields from cancellation.
- :class:`WriteCut` lets a long response (an MPEG-TS player) close its own connection at once,
  even in the middle of a write, and time its stalled writes itself.
- :func:`raise_open_file_limit` lifts the soft open-file limit to the hard one.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import json
import logging
import math
import os
import re
import resource
from collections import Counter
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass

import trio
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope

from ..channels.per_address import address_key
from ..config import IPNetwork

__all__ = [
    "ConnectionLimits",
    "Connections",
    "GuardedStream",
    "WriteCut",
    "default_connection_cap",
    "is_trusted",
    "raise_open_file_limit",
]

log = logging.getLogger(__name__)

ASGIApp = Callable[[Scope, ASGIReceiveCallable, ASGISendCallable], Awaitable[None]]

CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
"""accept() failures that mean "out of file descriptors or memory", not "bad connection"."""
SEND_CHUNK = 64 * 1024
"""Bytes written per progress check: a write this big that waits ``send_timeout`` is stalled."""
REFUSED = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"content-type: application/json\r\n"
    b"retry-after: 1\r\n"
    b"connection: close\r\n"
    b"access-control-allow-origin: *\r\n"
)
_END_OF_HEAD = re.compile(rb"\n\r?\n")
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n"


def _refusal(message: str) -> bytes:
    body = json.dumps({"error": "too_many_connections", "message": message}).encode()
    return REFUSED + b"content-length: %d\r\n\r\n" % len(body) + body


def raise_open_file_limit() -> int:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit (logged once); return the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            log.warning("open-file limit stays %d (raising it to %d failed: %s)", soft, hard, exc)
            return soft
        log.info("open-file limit raised from %d to %d", soft, hard)
        return hard
    log.info("open-file limit is %d", soft)
    return soft


def default_connection_cap(fd_limit: int, reserve: int) -> int:
    """Client connections allowed under ``fd_limit``: ``reserve`` descriptors (at most a quarter
    of the limit) stay free for upstream connections, event posts, logs and listeners."""
    return max(16, fd_limit - min(reserve, fd_limit // 4))


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int
    """Client connections open at once."""
    per_address: int
    """Connections one peer address may hold; 0: no limit. Trusted proxies and media servers
    (``TRIOPROXY_MEDIA_SERVERS``) are exempt."""
    header_timeout: float
    send_timeout: float
    trusted_proxies: tuple[IPNetwork, ...] = ()
    media_servers: tuple[IPNetwork, ...] = ()


Nets = tuple[IPNetwork, ...]


def is_trusted(host: str, trusted: Nets) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in net for net in trusted if address.version == net.version)


class WriteCut:
    """A response's hold on the connection it is written to.

    Inside ``with cut:`` (in the task that sends the response: Hypercorn writes in the
    sender's task), the first write binds the connection; :meth:`close` then closes it at once,
    which also ends a write blocked on a client that stopped reading. ``send_timeout``, when
    set, replaces ``TRIOPROXY_SEND_TIMEOUT`` for these writes. Without a guarded connection (an
    in-memory transport), :meth:`close` does nothing.
    """

    __slots__ = ("_token", "send_timeout", "stream")

    def __init__(self) -> None:
        self.stream: GuardedStream | None = None
        self.send_timeout: float | None = None
        self._token: object = None

    def __enter__(self) -> WriteCut:
        self._token = _WRITE_CUT.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _WRITE_CUT.reset(self._token)  # type: ignore[arg-type]

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close_now()


_WRITE_CUT: ContextVar[WriteCut | None] = ContextVar("trioproxy_write_cut", default=None)


class GuardedStream(trio.abc.HalfCloseableStream):
    """A client's socket stream, with a deadline on its request heads and on stalled writes."""

    def __init__(self, raw: trio.SocketStream, owner: Connections, address: str | None) -> None:
        self.raw = raw
        self.socket = raw.socket  # Hypercorn reads the peer's and our address from it
        self.address = address
        """The peer's address as counted against the per-address cap (an IPv6 one by its /64;
        None: not counted)."""
        self._owner = owner
        self._limits = owner.limits
        self._head_deadline: float | None = trio.current_time() + self._limits.header_timeout
        self._tail = b""
        self._start = b""
        """The first bytes of the request head being timed."""
        self._http2 = False
        self._responded = False
        self.closed = False
        self.scope = trio.CancelScope()
        """The scope Hypercorn's handler of this connection runs in, cancelled on close."""

    @property
    def awaiting_head(self) -> bool:
        return self._head_deadline is not None

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        deadline = math.inf if self._head_deadline is None else self._head_deadline
        try:
            with trio.fail_at(deadline):
                data = await self.raw.receive_some(max_bytes)
        except trio.TooSlowError:
            log.debug("closing %s: no request head in time", self.address)
            self.close_now()
            raise
        if not data and (self._head_deadline is not None or self._responded):
            # The client left between requests or while receiving: Hypercorn would keep the
            # socket and its task until the keep-alive timeout.
            self.close_now()
        self._saw(data)
        return data

    def _saw(self, data: bytes | bytearray) -> None:
        if not data or self._http2:
            return
        if self._head_deadline is None:
            if not self._responded:
                return  # a body, or a request sent before the last answer: its head is in
            # The first byte after an answer starts the next request's head.
            self._responded = False
            self._tail = self._start = b""
            self._head_deadline = trio.current_time() + self._limits.header_timeout
            self._owner._awaiting(self)
        if len(self._start) < len(_HTTP2_PREFACE):
            self._start += bytes(data[: len(_HTTP2_PREFACE) - len(self._start)])
        seen = self._tail + bytes(data)
        if _END_OF_HEAD.search(seen) is not None:
            self._head_deadline = None
            self._owner._head_arrived(self)
            # HTTP/2 (prior knowledge, or after an h2c upgrade): frames from here on, not
            # request heads (Hypercorn closes idle HTTP/2 connections itself).
            self._http2 = self._start == _HTTP2_PREFACE
        else:
            self._tail = seen[-3:]

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self._responded = True
        timeout, chunk = self._limits.send_timeout, SEND_CHUNK
        cut = _WRITE_CUT.get()
        if cut is not None:
            # A long response times its own writes: each in one piece, under its own bound.
            cut.stream = self
            timeout, chunk = cut.send_timeout or timeout, max(len(data), 1)
        with memoryview(data) as view:
            if not view:
                await self.raw.send_all(b"")
                return
            for start in range(0, len(view), chunk):
                with trio.move_on_after(timeout) as scope:
                    await self.raw.send_all(view[start : start + chunk])
                if scope.cancelled_caught:
                    raise self.stalled(timeout)

    async def send_pieces(self, pieces: list[bytes]) -> None:
        """Write ``pieces`` in order (a whole answer): one gather write when the socket takes
        them all, the usual case; the rest as :meth:`send_all` writes, as the socket drains."""
        self._responded = True
        fd = self.socket.fileno()  # -1 once closed (the number may be another socket's by then)
        if fd < 0:
            raise trio.ClosedResourceError("the connection is closed")
        try:
            sent = os.writev(fd, pieces)
        except BlockingIOError:
            sent = 0
        except OSError as exc:  # reset, broken pipe: the client is gone
            self.close_now()
            raise trio.BrokenResourceError(f"the client is gone: {exc}") from exc
        rest = b"".join(pieces)[sent:] if sent < sum(map(len, pieces)) else b""
        if rest:
            await self.send_all(rest)

    async def wait_send_all_might_not_block(self) -> None:
        await self.raw.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self.raw.send_eof()

    async def aclose(self) -> None:
        self._owner._release(self)
        await self.raw.aclose()

    def stalled(self, timeout: float) -> trio.BrokenResourceError:
        """A write made no progress in ``timeout`` seconds: close the connection (logged); the
        error for the writer to raise."""
        log.info("closing %s: not reading (no progress in %gs)", self.address, timeout)
        self.close_now()
        return trio.BrokenResourceError("the client stopped reading")

    def close_now(self) -> None:
        """Close the socket at once and cancel the connection's handler; a task blocked reading or
        writing the socket gets an error."""
        self._owner._release(self)
        self.raw.socket.close()
        self.scope.cancel()


class Connections:
    """Every client connection open, counted against the caps; :meth:`close_all` ends them."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self._open: set[GuardedStream] = set()
        self._waiting: dict[GuardedStream, None] = {}
        """Connections awaiting a request head, oldest first."""
        self._per_address: Counter[str] = Counter()
        self._out_of_files = False
        self.refused = 0
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._open)

    def admit(self, raw: trio.SocketStream) -> GuardedStream | None:
        """The guarded stream for a new connection, or None when it must be refused."""
        if self._out_of_files:
            self._out_of_files = False
            log.warning("accepting connections again (%d open)", len(self._open))
        try:
            peer = raw.socket.getpeername()
        except OSError:
            return None
        host = str(peer[0]) if isinstance(peer, tuple) else str(peer)  # a unix socket: a path
        counted: str | None = None
        exempt = (*self.limits.trusted_proxies, *self.limits.media_servers)
        if self.limits.per_address and not is_trusted(host, exempt):
            counted = address_key(host)
            if self._per_address[counted] >= self.limits.per_address:
                return None
        if len(self._open) >= self.limits.max_connections:
            if not self._waiting:
                return None
            oldest = next(iter(self._waiting))
            oldest.close_now()
            self.evicted += 1
            if self.evicted == 1 or self.evicted % 1000 == 0:
                log.warning(
                    "at %d connections: closing the oldest still sending no request (%d so far)",
                    self.limits.max_connections,
                    self.evicted,
                )
        stream = GuardedStream(raw, self, counted)
        self._open.add(stream)
        self._waiting[stream] = None
        if counted is not None:
            self._per_address[counted] += 1
        return stream

    async def refuse(self, raw: trio.SocketStream) -> None:
        """Answer 503 at once (into an empty send buffer: no wait in practice) and close."""
        self.refused += 1
        if self.refused == 1 or self.refused % 1000 == 0:
            log.warning("refused a connection over the caps (%d so far)", self.refused)
        with trio.move_on_after(0.5):
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await raw.send_all(_refusal("too many connections; retry shortly"))
        await trio.aclose_forcefully(raw)

    def accept_failed(self, exc: OSError) -> None:
        """Log running out of descriptors once per episode (it ends at the next accept)."""
        if not self._out_of_files:
            self._out_of_files = True
            log.error(
                "cannot accept connections: %s (%d open); retrying",
                errno.errorcode.get(exc.errno or 0, exc),
                len(self._open),
            )

    def close_all(self) -> None:
        for stream in list(self._open):
            stream.close_now()

    def _awaiting(self, stream: GuardedStream) -> None:
        if not stream.closed:
            self._waiting[stream] = None

    def _head_arrived(self, stream: GuardedStream) -> None:
        self._waiting.pop(stream, None)

    def _release(self, stream: GuardedStream) -> None:
        if stream.closed:
            return
        stream.closed = True
        self._open.discard(stream)
        self._waiting.pop(stream, None)
        if stream.address is not None:
            self._per_address[stream.address] -= 1
            if self._per_address[stream.address] <= 0:
                del self._per_address[stream.address]
