"""End to end on real sockets (127.0.0.1, port 0): players that disconnect mid-segment, oversized
requests. None of it disturbs another channel, and nothing is ever answered with a 500."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio

from trioproxy.testing.engine import SimulatedEngine
from trioproxy.testing.harness import CONTENT_A, CONTENT_B

from ..media import service_before

BIG = 4_000_000
"""Bytes per segment: more than socket buffers hold, so a disconnect lands mid-send."""


@asynccontextmanager
async def live_proxy(**changes: Any) -> AsyncIterator[str]:
    """The real service in front of a simulated engine; stopped the way SIGTERM stops it."""
    engine = SimulatedEngine([bytes([n]) * BIG for n in range(4)], durations=[2.0], backlog=6.0)
    with trio.fail_after(30):
        async with service_before(engine, **changes) as url:
            yield url


async def _playlist(http: httpx.AsyncClient, base: str, key: str) -> tuple[str, list[str]]:
    first = await http.get(f"{base}/ace/getstream", params={"id": key})
    assert first.status_code == 302
    url = base + first.headers["location"]
    response = await http.get(url)
    assert response.status_code == 200
    return url, [line for line in response.text.splitlines() if line.endswith(".ts")]


async def test_players_leaving_mid_segment_disturb_nobody(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with live_proxy() as base, httpx.AsyncClient(timeout=20) as http:
        _, segments_a = await _playlist(http, base, CONTENT_A)
        url_b, _ = await _playlist(http, base, CONTENT_B)
        host, port = base.removeprefix("http://").split(":")
        for n in range(30):
            stream = await trio.open_tcp_stream(host, int(port))
            path = segments_a[n % len(segments_a)]
            await stream.send_all(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            received = await stream.receive_some(65536)
            assert received.startswith(b"HTTP/1.1 200")
            await stream.aclose()  # gone, with most of the segment still unsent
        # The other channel's player, and the first channel's, are served as before.
        for url in (url_b, base + segments_a[-1]):
            response = await http.get(url)
            assert response.status_code == 200
        full = await http.get(base + segments_a[-1])
        assert len(full.content) == BIG
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    ("what", "allowed"),
    [
        ("header", {400, 431}),
        ("url", {400, 414, 431}),
        ("body", {413}),
    ],
)
async def test_oversized_requests_are_refused(what: str, allowed: set[int]) -> None:
    async with live_proxy(api_key="k" * 20) as base:
        host, port = base.removeprefix("http://").split(":")
        stream = await trio.open_tcp_stream(host, int(port))
        path = f"/proxy/channels/{CONTENT_A}"
        headers = f"Host: {host}\r\nAuthorization: Bearer {'k' * 20}\r\n"
        body = b""
        if what == "header":
            headers += f"X-Junk: {'j' * 40_000}\r\n"
        elif what == "url":
            path += "?" + "q" * 40_000
        else:
            body = b"b" * 200_000
            headers += f"Content-Length: {len(body)}\r\n"
        request = f"DELETE {path} HTTP/1.1\r\n{headers}\r\n".encode() + body
        answer = b""
        with trio.fail_after(10):
            try:
                await stream.send_all(request)
                while b"\r\n" not in answer:
                    chunk = await stream.receive_some(4096)
                    if not chunk:
                        break
                    answer += chunk
            except trio.BrokenResourceError:
                pass  # the server may close on us before it has read everything
        await stream.aclose()
        if answer:
            status = int(answer.split()[1])
            assert status in allowed, answer[:200]
        # Whatever happened to that request, the proxy still serves.
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{base}/healthz")).status_code == 200
