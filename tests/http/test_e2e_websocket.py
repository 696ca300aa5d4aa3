"""WebSocket handshakes, on real sockets: the API has no WebSocket, so every handshake is refused
with a 4xx before anything routes it: no 500, no traceback, no error in the log, no session."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from trioproxy.testing.engine import SimulatedEngine
from trioproxy.testing.harness import CONTENT_A, small_media

from ..media import service_before

HANDSHAKE = (
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n"
)


@asynccontextmanager
async def running_proxy(engine: SimulatedEngine) -> AsyncIterator[tuple[str, int]]:
    """The real service on 127.0.0.1:0 in front of ``engine``; yields its host and port."""
    async with service_before(engine) as url:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        yield host, int(port)


async def raw_request(address: tuple[str, int], head: str) -> tuple[bytes, bytes]:
    """Send ``head`` (a request line and headers); the status line and body of the answer."""
    stream = await trio.open_tcp_stream(*address)
    async with stream:
        await stream.send_all(head.encode() + b"\r\n")
        answer = b""
        with trio.fail_after(10):
            while b"\r\n\r\n" not in answer:
                chunk = await stream.receive_some(65536)
                assert chunk, f"closed before the end of the headers: {answer!r}"
                answer += chunk
            headers, _, body = answer.partition(b"\r\n\r\n")
            status_line, *fields = headers.split(b"\r\n")
            lengths = [
                f.split(b":", 1)[1] for f in fields if f.lower().startswith(b"content-length:")
            ]
            while len(body) < int(lengths[0]):
                chunk = await stream.receive_some(65536)
                assert chunk, f"closed before the end of the body: {answer!r}"
                body += chunk
    return status_line, body


@pytest.mark.parametrize(
    "target",
    [
        "/healthz",
        "/proxy/status",
        f"/ace/getstream?id={CONTENT_A}",
        f"/ace/hls/{CONTENT_A}/index.m3u8",
        f"/ace/hls/{CONTENT_A}/{'0123abcd' * 4}/1.ts",
        "/sources/news.m3u8",
        "/nothing/here",
    ],
)
async def test_websocket_handshakes_are_refused_quietly(
    caplog: pytest.LogCaptureFixture, target: str
) -> None:
    caplog.set_level(logging.DEBUG)
    engine = SimulatedEngine(small_media(), durations=[2.0])
    async with running_proxy(engine) as address:
        for _ in range(3):
            request = f"GET {target} HTTP/1.1\r\nHost: x\r\n{HANDSHAKE}"
            status_line, body = await raw_request(address, request)
            assert status_line == b"HTTP/1.1 403 ", body
            assert body == b""
        # The proxy still serves, and the handshakes started nothing.
        status_line, body = await raw_request(address, "GET /healthz HTTP/1.1\r\nHost: x\r\n")
        assert status_line == b"HTTP/1.1 200 "
        assert body == b'{"status":"ok"}\n'
    assert engine.sessions == {}
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []
    assert not [r for r in caplog.records if r.exc_info]


async def test_malformed_websocket_handshakes_are_4xx(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    engine = SimulatedEngine(small_media(), durations=[2.0])
    async with running_proxy(engine) as address:
        for headers in [
            "Upgrade: websocket\r\nConnection: Upgrade\r\n",
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 99\r\n",
            HANDSHAKE.replace("dGhlIHNhbXBsZSBub25jZQ==", "not-base64!"),
        ]:
            request = f"GET /healthz HTTP/1.1\r\nHost: x\r\n{headers}"
            status_line, body = await raw_request(address, request)
            assert 400 <= int(status_line.split(b" ")[1]) < 500, (status_line, body)
    assert engine.sessions == {}
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
