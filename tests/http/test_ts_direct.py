"""MPEG-TS players on real sockets (127.0.0.1:0, our accept loop and Hypercorn), whose bodies go
straight to the socket: chunked framing that parses, one chunk per segment, a terminating chunk
when the channel ends and then the connection closes (never reused); a client that closes in the
middle of a segment is gone at once; a reader that stops is cut at its lag bound, or by the send
timeout when no segment comes to measure its lag; a segment the engine answers empty is no
end of the body; HTTP/1.0 and HTTP/2 players still play. The channel and its engine run in
memory on the autojump clock."""

from __future__ import annotations

import itertools
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import h11
import httpx
import pytest
import trio
import trio.lowlevel
import trio.testing

from trioproxy.channels.status import ts_status
from trioproxy.hls.mpegts import NULL_PACKET
from trioproxy.http.connections import ConnectionLimits, Connections
from trioproxy.http.direct import DirectBody
from trioproxy.testing.engine import SimulatedEngine
from trioproxy.testing.harness import CONTENT_A, Harness, default_config, harness, small_media

from ..media import guarded_http

TS_TARGET = f"/ace/getstream?id={CONTENT_A}&format=ts"
BIG = 1 << 20
"""Bytes of a segment no socket buffer takes at once (a 4 KiB receive buffer)."""


def big_engine() -> SimulatedEngine:
    return SimulatedEngine(small_media(16, BIG), durations=[2.0], backlog=6.0)


@asynccontextmanager
async def served(h: Harness) -> AsyncIterator[tuple[int, Connections]]:
    """The harness's proxy served on 127.0.0.1:0 as the service serves it."""
    limits = ConnectionLimits(100, 0, header_timeout=5.0, send_timeout=h.config.send_timeout)
    connections = Connections(limits)
    async with guarded_http(h.app, connections) as port:
        yield port, connections


@dataclass
class RawPlayer:
    """A TS player on a raw socket: sends ``request``, parses the answer with h11 (which checks
    the chunked framing), and keeps every byte received and every chunk whole."""

    port: int
    request: bytes = b"GET " + TS_TARGET.encode() + b" HTTP/1.1\r\nHost: proxy\r\n\r\n"
    receive_buffer: int | None = None
    raw: bytearray = field(default_factory=bytearray)
    chunks: list[tuple[float, bytes]] = field(default_factory=list)
    response: h11.Response | None = None
    ended: bool = False
    """The body ended with its end of message (the terminating chunk)."""
    closed: bool = False
    """The server closed the connection."""
    error: h11.RemoteProtocolError | None = None
    sock: trio.socket.SocketType = field(init=False)
    started: trio.Event = field(default_factory=trio.Event)

    async def connect(self) -> None:
        self.sock = trio.socket.socket()
        if self.receive_buffer:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer)
        await self.sock.connect(("127.0.0.1", self.port))
        await self.sock.send(self.request)

    async def __aenter__(self) -> RawPlayer:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.sock.close()

    async def receive(self, limit: int = 65536) -> bytes:
        data = await self.sock.recv(limit)
        self.raw += data
        if not data:
            self.closed = True
        return data

    async def head(self) -> h11.Response:
        """Read until the response head is in (the body stays unread in the connection)."""
        connection = h11.Connection(h11.CLIENT)
        while b"\r\n\r\n" not in self.raw:
            assert await self.receive(1)
        connection.send(h11.Request(method="GET", target=TS_TARGET, headers=[("host", "proxy")]))
        connection.receive_data(bytes(self.raw))
        event = connection.next_event()
        assert isinstance(event, h11.Response)
        self.response = event
        return event

    @property
    def headers(self) -> dict[bytes, bytes]:
        assert self.response is not None
        return dict(self.response.headers)

    async def run(self) -> None:
        """Play until the response ends (or breaks) and the server closes the connection."""
        await self.connect()
        connection = h11.Connection(h11.CLIENT)
        connection.send(h11.Request(method="GET", target=TS_TARGET, headers=[("host", "proxy")]))
        chunk = bytearray()
        try:
            while True:
                event = connection.next_event()
                if event is h11.NEED_DATA:
                    connection.receive_data(await self.receive())
                elif isinstance(event, h11.Response):
                    self.response = event
                    self.started.set()
                elif isinstance(event, h11.Data):
                    chunk += event.data
                    if event.chunk_end:
                        self.chunks.append((trio.current_time(), bytes(chunk)))
                        chunk.clear()
                elif isinstance(event, h11.EndOfMessage):
                    self.ended = True
                    while not self.closed:
                        await self.receive()
                    return
                else:
                    raise AssertionError(f"unexpected {event!r}")
        except h11.RemoteProtocolError as error:
            self.error = error
        finally:
            self.sock.close()

    @property
    def media(self) -> list[tuple[float, bytes]]:
        return [(at, data) for at, data in self.chunks if data != NULL_PACKET]


def consecutive_segments(chunks: list[tuple[float, bytes]], size: int) -> list[int]:
    """The sequence of each chunk, checking each is one whole segment (small_media: byte n)."""
    sequences = [data[0] for _, data in chunks]
    assert [data for _, data in chunks] == [bytes([n]) * size for n in sequences]
    assert sequences == list(range(sequences[0], sequences[0] + len(sequences)))
    return sequences


async def test_each_segment_is_one_chunk_then_a_terminating_chunk_and_the_connection_closes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h, served(h) as (port, connections), trio.open_nursery() as nursery:
        channel = await h.wait_channel()
        # A second request pipelined behind the TS one: it must never be answered.
        request = RawPlayer.request + b"GET /healthz HTTP/1.1\r\nHost: proxy\r\n\r\n"
        player = RawPlayer(port, request)
        nursery.start_soon(player.run)
        await player.started.wait()
        joined = trio.current_time()
        assert player.headers[b"content-type"] == b"video/mp2t"
        assert player.headers[b"transfer-encoding"] == b"chunked"
        assert b"content-length" not in player.headers
        await trio.sleep(9.0)
        assert h.registry.stop_channel(CONTENT_A)
        with trio.fail_after(1):
            await channel.closed.wait()
    assert player.ended
    assert player.closed
    assert player.error is None
    # Every chunk is one whole segment, in order, each as it arrived (every 2 s).
    sequences = consecutive_segments(player.chunks, 1000)
    assert len(sequences) == 5
    assert [at - joined for at, _ in player.chunks] == pytest.approx([0, 2, 4, 6, 8], abs=1.0)
    # The bytes are exactly the chunks, then the terminating chunk, and nothing after.
    framed = b"".join(b"%x\r\n%s\r\n" % (len(data), data) for _, data in player.chunks)
    assert bytes(player.raw).split(b"\r\n\r\n", 1)[1] == framed + b"0\r\n\r\n"
    assert len(connections) == 0
    assert channel.ts.served == 1


async def test_an_empty_segment_mid_stream_leaves_the_chunked_body_open(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Segment 6 comes after the player joined (6 s on air: 0-2 exist, the newest goes first).
    engine = SimulatedEngine(small_media(), durations=[2.0], backlog=6.0, empty={6})
    async with (
        harness(engine=engine) as h,
        served(h) as (port, _),
        trio.open_nursery() as nursery,
    ):
        channel = await h.wait_channel()
        player = RawPlayer(port)
        nursery.start_soon(player.run)
        await player.started.wait()
        await trio.sleep(16.0)
        (session,) = h.sim.sessions.values()
        assert session.segment_requests[6] >= 1  # it was asked for, and answered empty
        # The player plays on past it: no terminating chunk, nothing broken.
        assert not player.ended
        assert player.error is None
        assert b"0\r\n\r\n" not in bytes(player.raw)
        # Each segment as it came, whole, segment 6 left out (a gap), then the ones after it.
        assert all(data == bytes([data[0]]) * 1000 for _, data in player.media)
        assert [data[0] for _, data in player.media] == [2, 3, 4, 5, 7, 8, 9]
        assert h.registry.stop_channel(CONTENT_A)
        with trio.fail_after(1):
            await channel.closed.wait()
    assert player.ended


async def test_an_empty_write_writes_nothing() -> None:
    connections = Connections(ConnectionLimits(10, 0, header_timeout=5.0, send_timeout=5.0))
    server, client = trio.socket.socketpair()
    stream = connections.admit(trio.SocketStream(server))
    assert stream is not None
    async with stream, trio.SocketStream(client) as peer:
        body = DirectBody(stream, chunked=True, send_timeout=5.0)
        await body.write(b"")
        await body.write(b"ts")
        await body.write(b"")
        await body.end()
        await stream.send_eof()
        received = b""
        while data := await peer.receive_some():
            received += data
    assert received == b"2\r\nts\r\n0\r\n\r\n"


async def test_an_http10_player_gets_the_bare_segments_until_the_connection_closes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h, served(h) as (port, _):
        channel = await h.wait_channel()
        request = b"GET " + TS_TARGET.encode() + b" HTTP/1.0\r\n\r\n"
        async with RawPlayer(port, request) as player:
            await player.head()
            assert b"transfer-encoding" not in player.headers
            assert player.headers[b"connection"] == b"close"  # h11 says so to HTTP/1.0
            await trio.sleep(5.0)
            assert h.registry.stop_channel(CONTENT_A)
            with trio.fail_after(1):
                while await player.receive():
                    pass
            await channel.closed.wait()
    body = bytes(player.raw).split(b"\r\n\r\n", 1)[1]
    assert len(body) == 3 * 1000
    first = body[0]
    assert body == b"".join(bytes([first + n]) * 1000 for n in range(3))


async def test_a_client_that_closes_in_the_middle_of_a_segment_is_gone_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness(engine=big_engine()) as h, served(h) as (port, connections):
        channel = await h.wait_channel()
        async with RawPlayer(port, receive_buffer=4096) as player:
            await player.head()
            while len(player.raw) < 16384:
                await player.receive()
            # The proxy is in the middle of the first segment: the socket took part of it.
            (row,) = ts_status(channel.ts, trio.current_time())["players"]
            assert row["bytes_sent"] == 0
            assert len(player.raw) < BIG
        closed_at = trio.current_time()
        with trio.fail_after(1):
            await channel.ts.wait_gone()
        assert trio.current_time() == closed_at
        assert channel.ts.cut == 0
        for _ in range(1000):  # scheduling rounds, no time
            if not len(connections):
                break
            await trio.lowlevel.checkpoint()
        assert len(connections) == 0
        assert trio.current_time() == closed_at


async def test_a_reader_that_stops_is_cut_at_its_lag_bound_and_slows_nobody(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with (
        harness(engine=big_engine()) as h,
        served(h) as (port, _),
        trio.open_nursery() as nursery,
    ):
        channel = await h.wait_channel()
        reader = RawPlayer(port)
        nursery.start_soon(reader.run)
        await reader.started.wait()
        async with RawPlayer(port, receive_buffer=4096) as stuck:
            await stuck.head()  # then reads nothing
            joined = trio.current_time()
            with trio.fail_after(20):
                while channel.ts.cut == 0:  # noqa: ASYNC110 (the stream's count)
                    await trio.sleep(0.1)
            # Cut when a segment arrives and the one it is stuck on (the newest when it
            # joined) arrived two segment durations ago or more (2 s segments), well before
            # the send timeout (20 s plus the lag bound).
            assert 4.0 <= trio.current_time() - joined <= 6.0
            assert len(channel.ts) == 1
            # Its connection is closed: what it reads now ends before the segment does.
            with trio.fail_after(1):
                while await stuck.receive():
                    pass
            assert not stuck.raw.endswith(b"0\r\n\r\n")
        await trio.sleep(6.0)
        assert h.registry.stop_channel(CONTENT_A)
    # The other player got each segment as it arrived.
    times = [at for at, _ in reader.media]
    assert {round(b - a) for a, b in itertools.pairwise(times[1:])} == {2}
    assert len(consecutive_segments(reader.media, BIG)) >= 6
    assert reader.ended


async def test_a_stalled_write_with_no_segment_coming_is_closed_by_the_send_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = default_config(send_timeout=2.0, failover_stall_targets=0.0)
    async with harness(config, engine=big_engine()) as h, served(h) as (port, connections):
        channel = await h.wait_channel()
        h.engine.faults["*"] = "stall"  # no new segment: nothing measures the lag
        await trio.sleep(2.5)
        async with RawPlayer(port, receive_buffer=4096) as stuck:
            await stuck.head()
            joined = trio.current_time()
            with trio.fail_after(30):
                await channel.ts.wait_gone()
            # The send timeout, plus the lag the lag bound allows (3 segments of 2 s).
            assert trio.current_time() - joined == pytest.approx(2.0 + 3 * 2.0)
        assert channel.ts.cut == 0
        assert len(connections) == 0


async def test_an_http2_player_plays_through_the_asgi_send(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with (
        harness() as h,
        served(h) as (port, _),
        httpx.AsyncClient(http1=False, http2=True) as client,
    ):
        channel = await h.wait_channel()
        received: list[bytes] = []
        url = f"http://127.0.0.1:{port}{TS_TARGET}"
        with trio.fail_after(30):
            async with client.stream("GET", url) as response, trio.open_nursery() as nursery:
                assert response.http_version == "HTTP/2"
                assert response.headers["content-type"] == "video/mp2t"
                assert "connection" not in response.headers

                async def stop_later() -> None:
                    # Longer than the header timeout (5 s): HTTP/2 frames are not request heads.
                    await trio.sleep(9.0)
                    h.registry.stop_channel(CONTENT_A)

                nursery.start_soon(stop_later)
                async for data in response.aiter_raw():
                    received.append(data)
        await channel.closed.wait()
    body = b"".join(received)
    assert len(body) == 5 * 1000
    assert body == b"".join(bytes([body[0] + n]) * 1000 for n in range(5))
