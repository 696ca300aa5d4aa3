"""A lean HTTP/1.1 client on Trio sockets, for load generation, and HLS players on it.

httpx costs about as much CPU per request as the server under test; this client parses just
enough HTTP/1.1 (status, headers, Content-Length or chunked bodies, keep-alive) to keep the load
generator cheap. Loopback only: it refuses any host but 127.0.0.1, ::1 and localhost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import trio

from trioproxy.testing.players import Player, PlayerLog

from .stats import spread

__all__ = ["Connection", "LoadResult", "Response", "hammer", "play", "sample_lag", "split_url"]

LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def split_url(url: str) -> tuple[str, int, str]:
    """(host, port, path with query) of a loopback ``http://`` URL."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in LOOPBACK:
        raise ValueError(f"benchmarks only talk to loopback http:// URLs, not {url!r}")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.hostname, parts.port or 80, path


class Connection:
    """One keep-alive connection to one server; reconnects when the server closes it."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._stream: trio.SocketStream | None = None
        self._buffer = bytearray()

    async def aclose(self) -> None:
        if self._stream is not None:
            stream, self._stream = self._stream, None
            await stream.aclose()

    async def request(
        self, method: str, path: str, headers: dict[str, str] | None = None
    ) -> Response:
        for attempt in range(2):
            fresh = self._stream is None
            if self._stream is None:
                self._stream = await trio.open_tcp_stream(self.host, self.port)
                self._buffer.clear()
            try:
                return await self._exchange(method, path, headers or {})
            except (trio.BrokenResourceError, trio.ClosedResourceError, EOFError):
                await self.aclose()
                if fresh or attempt:
                    raise
        raise AssertionError("unreachable")

    async def _exchange(self, method: str, path: str, headers: dict[str, str]) -> Response:
        assert self._stream is not None
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        await self._stream.send_all(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        head = await self._read_until(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        parsed: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            parsed[name.strip().lower()] = value.strip()
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            body = b""
        elif "content-length" in parsed:
            body = await self._read_exactly(int(parsed["content-length"]))
        elif parsed.get("transfer-encoding", "").lower() == "chunked":
            body = await self._read_chunked()
        else:
            body = await self._read_to_close()
        if parsed.get("connection", "").lower() == "close":
            await self.aclose()
        return Response(status, parsed, body)

    async def _fill(self) -> None:
        assert self._stream is not None
        data = await self._stream.receive_some(262144)
        if not data:
            raise EOFError("server closed the connection")
        self._buffer += data

    async def _read_until(self, marker: bytes) -> bytes:
        while (index := self._buffer.find(marker)) < 0:
            await self._fill()
        data = bytes(self._buffer[:index])
        del self._buffer[: index + len(marker)]
        return data

    async def _read_exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            await self._fill()
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    async def _read_chunked(self) -> bytes:
        body = bytearray()
        while True:
            size = int((await self._read_until(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self._read_until(b"\r\n")
                return bytes(body)
            body += await self._read_exactly(size)
            await self._read_until(b"\r\n")

    async def _read_to_close(self) -> bytes:
        try:
            while True:
                await self._fill()
        except EOFError:
            data = bytes(self._buffer)
            self._buffer.clear()
            self._stream = None
            return data


@dataclass
class LoadResult:
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else math.nan

    def summary(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
            "requests_per_second": self.rate,
            "latency_ms": spread(self.latencies, 1000),
        }


async def hammer(url: str, connections: int, seconds: float) -> LoadResult:
    """``connections`` keep-alive connections GET ``url`` back to back for ``seconds``."""
    host, port, path = split_url(url)
    result = LoadResult()
    deadline = trio.current_time() + seconds

    async def worker() -> None:
        connection = Connection(host, port)
        try:
            while trio.current_time() < deadline:
                began = trio.current_time()
                try:
                    response = await connection.request("GET", path)
                except (OSError, EOFError, trio.BrokenResourceError):
                    result.errors += 1
                    await connection.aclose()
                    continue
                if response.status != 200:
                    result.errors += 1
                    continue
                result.requests += 1
                result.latencies.append(trio.current_time() - began)
        finally:
            await connection.aclose()

    began = trio.current_time()
    with trio.move_on_at(deadline + 5.0):
        async with trio.open_nursery() as nursery:
            for _ in range(connections):
                nursery.start_soon(worker)
    result.seconds = trio.current_time() - began
    return result


async def sample_lag(samples: list[float], until: float, interval: float = 0.01) -> None:
    """How late ``trio.sleep(interval)`` wakes up in this process, until ``until``."""
    while trio.current_time() < until:
        began = trio.current_time()
        await trio.sleep(interval)
        samples.append(trio.current_time() - began - interval)


async def play(base_url: str, content_id: str, until: float, log: PlayerLog) -> None:
    """One :class:`~trioproxy.testing.players.Player` on its own keep-alive connection: opens
    the channel, reloads the playlist by hls.js's rule (once per target duration, half of it
    after a reload that brought no new segment: ``hlsjs_reload_interval``) and fetches each new
    segment once (starting at the newest), until ``until`` (``trio.current_time()``)."""
    host, port, _ = split_url(base_url)
    connection = Connection(host, port)

    async def get(url: str) -> Response:
        return await connection.request("GET", url)

    try:
        await Player(get, log, hlsjs_reload=True).watch(content_id, until)
    finally:
        await connection.aclose()
