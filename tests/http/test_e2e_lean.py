"""The lean path on real sockets, through the real service, read by h11 as a client: keep-alive,
pipelining, HEAD, errors, and the hand-over to Hypercorn mid-connection."""

from __future__ import annotations

import logging
import socket
import struct
from urllib.parse import urlsplit

import h11
import pytest
import trio

from tests.media import service_before
from trioproxy.testing.engine import SimulatedEngine, demo_media

CONTENT = "c" * 40


def _request(method: str, target: str, *extra: tuple[str, str]) -> h11.Request:
    return h11.Request(method=method, target=target, headers=[("Host", "proxy"), *extra])


class Client:
    """One connection, read by h11: requests written in one go, answers read in order."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT)

    async def ask(self, *requests: h11.Request) -> list[tuple[h11.Response, bytes]]:
        await self.stream.send_all(b"".join(_wire(request) for request in requests))
        return [await self._answer(request) for request in requests]

    async def _answer(self, request: h11.Request) -> tuple[h11.Response, bytes]:
        if self.h11.our_state is h11.DONE:
            self.h11.start_next_cycle()
        self.h11.send(request)  # for h11's bookkeeping: the bytes went out already
        self.h11.send(h11.EndOfMessage())
        response: h11.Response | None = None
        body = b""
        with trio.fail_after(10):
            while True:
                event = self.h11.next_event()
                if event is h11.NEED_DATA:
                    self.h11.receive_data(await self.stream.receive_some(65536))
                elif isinstance(event, h11.Response):
                    response = event
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    assert response is not None
                    return response, body
                else:
                    raise AssertionError(f"unexpected {event!r}")


def _headers(response: h11.Response) -> dict[bytes, bytes]:
    return {name: value for name, value in response.headers}


async def test_a_player_connection_is_served_kept_alive_pipelined_and_handed_on() -> None:
    engine = SimulatedEngine(demo_media(), durations=[2.0], list_size=6, backlog=12.0)
    async with service_before(engine) as url:
        port = urlsplit(url).port
        assert port is not None
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            # A player arrives: the redirect, then the playlist on the same connection.
            client = Client(stream)
            [(redirect, _)] = await client.ask(_request("GET", f"/ace/getstream?id={CONTENT}"))
            assert redirect.status_code == 302
            location = _headers(redirect)[b"location"].decode()
            [(playlist, text)] = await client.ask(_request("GET", location))
            assert playlist.status_code == 200
            assert _headers(playlist)[b"content-type"] == b"application/vnd.apple.mpegurl"
            assert _headers(playlist)[b"cache-control"] == b"no-cache"
            assert _headers(playlist)[b"access-control-allow-origin"] == b"*"
            segment = next(line for line in text.decode().splitlines() if line.endswith(".ts"))

            # Several requests in one write: GET, HEAD, a missing segment, the playlist.
            missing = segment.rsplit("/", 1)[0] + "/999999.ts"
            answers = await client.ask(
                _request("GET", segment),
                _request("HEAD", segment),
                _request("GET", missing),
                _request("GET", location),
            )
            (got, media), (head, empty), (gone, error), (again, _) = answers
            assert got.status_code == 200
            assert media[:1] == b"\x47"
            assert _headers(got)[b"content-length"] == str(len(media)).encode()
            assert _headers(got)[b"cache-control"] == b"public, max-age=3600, immutable"
            assert head.status_code == 200
            assert empty == b""
            assert _headers(head)[b"content-length"] == str(len(media)).encode()
            assert gone.status_code == 404
            assert b"not_found" in error
            assert again.status_code == 200

            # A request the lean path does not answer: Hypercorn takes the connection, and
            # answers what follows on it as the app does.
            (health, _), (after, data) = await client.ask(
                _request("GET", "/healthz"), _request("GET", segment)
            )
            assert health.status_code == 200
            assert after.status_code == 200
            assert data == media

            # Connection: close is honoured.
            [(last, _)] = await client.ask(_request("GET", segment, ("Connection", "close")))
            assert last.status_code == 200
            assert await stream.receive_some(10) == b""

        # A fresh connection asking to close after one lean answer.
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            client = Client(stream)
            [(closing, _)] = await client.ask(_request("GET", segment, ("Connection", "close")))
            assert closing.status_code == 200
            assert _headers(closing)[b"connection"] == b"close"
            assert await stream.receive_some(10) == b""


def _wire(request: h11.Request) -> bytes:
    connection = h11.Connection(h11.CLIENT)
    return (connection.send(request) or b"") + (connection.send(h11.EndOfMessage()) or b"")


async def test_players_that_reset_their_connection_mid_answer_take_nothing_down(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A player gone with a reset (RST) while a large segment is being written to it: its
    connection ends quietly; the service goes on serving everyone else."""
    engine = SimulatedEngine(demo_media(), durations=[2.0], list_size=6, backlog=12.0)
    async with service_before(engine) as url:
        port = urlsplit(url).port
        assert port is not None
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            client = Client(stream)
            [(redirect, _)] = await client.ask(_request("GET", f"/ace/getstream?id={CONTENT}"))
            location = _headers(redirect)[b"location"].decode()
            [(_, text)] = await client.ask(_request("GET", location))
            segment = next(line for line in text.decode().splitlines() if line.endswith(".ts"))
            for _ in range(20):
                sock = trio.socket.socket()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                await sock.connect(("127.0.0.1", port))
                request = f"GET {segment} HTTP/1.1\r\nHost: proxy\r\n\r\n".encode()
                await sock.send(request * 4)  # pipelined: the answers outgrow every buffer
                assert (await sock.recv(64)).startswith(b"HTTP/1.1 200")
                # Closed with unread data (and a zero linger): the peer gets a reset.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
            await trio.sleep(0.2)
            [(still, media)] = await client.ask(_request("GET", segment))
            assert still.status_code == 200
            assert media[:1] == b"\x47"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
