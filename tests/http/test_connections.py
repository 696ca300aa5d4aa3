"""Guarded client connections, on socket pairs and the autojump clock: head deadlines, stalled
writes, the caps, eviction, and the per-forwarded-address limit."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import cast

import pytest
import trio
import trio.testing
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, HTTPScope, Scope

from trioproxy.config.parsers import network_list
from trioproxy.http.connections import (
    ConnectionLimits,
    Connections,
    GuardedStream,
    default_connection_cap,
)
from trioproxy.http.inflight import ForwardedLimit

LIMITS = ConnectionLimits(max_connections=3, per_address=0, header_timeout=5.0, send_timeout=20.0)


@asynccontextmanager
async def pair(connections: Connections) -> AsyncIterator[tuple[GuardedStream, trio.SocketStream]]:
    """A guarded server end and the client's end of a socket pair."""
    server, client = trio.socket.socketpair()
    guarded = connections.admit(trio.SocketStream(server))
    assert guarded is not None
    async with guarded, trio.SocketStream(client) as peer:
        yield guarded, peer


async def test_a_connection_that_sends_nothing_is_closed_at_the_header_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    connections = Connections(LIMITS)
    async with pair(connections) as (server, _):
        with pytest.raises(trio.TooSlowError):
            await server.receive_some()
        assert trio.current_time() == 5.0
        assert len(connections) == 0


async def test_a_head_sent_byte_by_byte_is_closed_at_the_header_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    connections = Connections(LIMITS)
    async with pair(connections) as (server, client), trio.open_nursery() as nursery:

        async def trickle() -> None:
            for byte in b"GET / HTTP/1.1\r\nHost: x\r\n":
                await client.send_all(bytes([byte]))
                await trio.sleep(1.0)

        async def read_all() -> None:
            while True:
                await server.receive_some()

        nursery.start_soon(trickle)
        with pytest.raises(trio.TooSlowError):
            await read_all()
        assert trio.current_time() == 5.0
        nursery.cancel_scope.cancel()


async def test_no_read_deadline_while_a_response_streams_then_the_next_head_is_timed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    connections = Connections(LIMITS)
    async with pair(connections) as (server, client):
        await client.send_all(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        assert await server.receive_some() == b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n"

        async def stream_for_a_minute() -> None:
            for _ in range(60):
                await server.send_all(b"x" * 1000)
                assert await client.receive_some(1000)
                await trio.sleep(1.0)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(stream_for_a_minute)
            with trio.move_on_after(61) as waited:
                await server.receive_some()  # the client sends nothing while it receives
        assert waited.cancelled_caught
        assert trio.current_time() == 61.0
        # The first byte of the next request starts its head's deadline.
        await client.send_all(b"G")
        assert await server.receive_some() == b"G"
        with pytest.raises(trio.TooSlowError):
            await server.receive_some()
        assert trio.current_time() == 66.0


async def test_a_client_that_stops_reading_is_closed_after_the_send_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    connections = Connections(LIMITS)
    async with pair(connections) as (server, client):
        await client.send_all(b"GET /big HTTP/1.1\r\n\r\n")
        await server.receive_some()
        with pytest.raises(trio.BrokenResourceError):
            await server.send_all(b"x" * (64 * 1024 * 1024))
        assert trio.current_time() == 20.0
        assert len(connections) == 0
        # The socket is closed at once: a read blocked on it ends too.
        with pytest.raises(trio.ClosedResourceError):
            await server.receive_some()


async def test_at_the_cap_the_oldest_connection_without_a_head_makes_room() -> None:
    connections = Connections(LIMITS)
    async with (
        pair(connections) as (first, first_client),
        pair(connections) as (second, _),
        pair(connections) as (third, _),
    ):
        await first_client.send_all(b"GET / HTTP/1.1\r\n\r\n")
        await first.receive_some()  # its head is in: it is not evicted
        async with pair(connections) as (fourth, _):
            assert len(connections) == 3
            assert [s.closed for s in (first, second, third, fourth)] == [False, True, False, False]
            with pytest.raises(trio.ClosedResourceError):
                await second.receive_some()
            assert connections.evicted == 1


async def test_at_the_cap_with_every_connection_busy_a_new_one_is_refused_with_503() -> None:
    connections = Connections(LIMITS)
    async with (
        pair(connections) as (a, a_client),
        pair(connections) as (b, b_client),
        pair(connections) as (c, c_client),
    ):
        for server, client in ((a, a_client), (b, b_client), (c, c_client)):
            await client.send_all(b"GET / HTTP/1.1\r\n\r\n")
            await server.receive_some()
        server_end, client_end = trio.socket.socketpair()
        raw = trio.SocketStream(server_end)
        assert connections.admit(raw) is None
        await connections.refuse(raw)
        async with trio.SocketStream(client_end) as refused:
            answer = b""
            while chunk := await refused.receive_some():
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 503 ")
        assert b"retry-after: 1\r\n" in answer
        assert answer.endswith(
            b'{"error": "too_many_connections", "message": "too many connections; retry shortly"}'[
                -60:
            ]
        )


async def test_per_address_cap_counts_the_peer_and_exempts_trusted_proxies() -> None:
    limits = ConnectionLimits(100, 2, 5.0, 20.0, network_list("10.0.0.0/8"))
    connections = Connections(limits)

    async def connect(source: str) -> tuple[trio.SocketStream, trio.SocketStream]:
        listener = trio.socket.socket()
        await listener.bind(("127.0.0.1", 0))
        listener.listen()
        client = trio.socket.socket()
        await client.bind((source, 0))
        await client.connect(listener.getsockname())
        server, _ = await listener.accept()
        listener.close()
        return trio.SocketStream(server), trio.SocketStream(client)

    held = []
    for _ in range(2):
        raw, client = await connect("127.0.0.1")
        stream = connections.admit(raw)
        assert stream is not None
        held.append((stream, client))
    raw, client = await connect("127.0.0.1")
    assert connections.admit(raw) is None
    await raw.aclose()
    await client.aclose()
    raw, client = await connect("127.0.0.2")
    other = connections.admit(raw)
    assert other is not None
    held.append((other, client))
    await held[0][0].aclose()  # a slot of 127.0.0.1 is free again
    raw, client = await connect("127.0.0.1")
    again = connections.admit(raw)
    assert again is not None
    held.append((again, client))
    for stream, client in held:
        await stream.aclose()
        await client.aclose()
    assert len(connections) == 0


class _Accepted:
    """An accepted socket from ``address`` (IPv6 addresses cannot be bound here at will): only
    its peer's name is read, and it is closed."""

    def __init__(self, address: str) -> None:
        self.address = address

    def getpeername(self) -> tuple[str, int, int, int]:
        return (self.address, 40000, 0, 0)

    def close(self) -> None:
        pass


def _from(address: str) -> trio.SocketStream:
    raw = SimpleNamespace(socket=_Accepted(address))
    return cast(trio.SocketStream, raw)


async def test_per_address_cap_counts_an_ipv6_peer_by_its_64_and_a_mapped_one_as_ipv4() -> None:
    connections = Connections(ConnectionLimits(100, 3, 5.0, 20.0))
    one_network = [f"2001:db8:1:2::{n:x}" for n in range(1, 4)]
    held = [connections.admit(_from(address)) for address in one_network]
    assert all(stream is not None for stream in held)
    # A fourth address of the same /64 (any interface id) is one peer too many.
    assert connections.admit(_from("2001:db8:1:2:ffff:1:2:3")) is None
    assert connections.admit(_from("2001:db8:1:3::1")) is not None  # the next /64
    first = held[0]
    assert first is not None
    first.close_now()  # a slot of that /64 is free again
    assert connections.admit(_from("2001:db8:1:2::99")) is not None
    # An IPv4-mapped peer is its IPv4 address.
    for _ in range(3):
        assert connections.admit(_from("192.0.2.7")) is not None
    assert connections.admit(_from("::ffff:192.0.2.7")) is None


async def test_running_out_of_descriptors_is_logged_once_per_episode(
    caplog: pytest.LogCaptureFixture,
) -> None:
    connections = Connections(LIMITS)
    caplog.set_level(logging.INFO, "trioproxy.http.connections")
    emfile = OSError(24, "Too many open files")
    for _ in range(50):
        connections.accept_failed(emfile)
    async with pair(connections):
        pass
    connections.accept_failed(emfile)
    messages = [record.getMessage() for record in caplog.records]
    assert messages == [
        "cannot accept connections: EMFILE (0 open); retrying",
        "accepting connections again (0 open)",
        "cannot accept connections: EMFILE (0 open); retrying",
    ]
    assert all(record.exc_info is None for record in caplog.records)


def test_the_default_cap_leaves_room_below_the_descriptor_limit() -> None:
    assert default_connection_cap(1024, 576) == 768
    assert default_connection_cap(1_048_576, 576) == 1_048_000
    assert default_connection_cap(40, 576) == 30


async def test_requests_a_trusted_proxy_forwards_are_capped_per_client_address() -> None:
    release = trio.Event()
    served: list[str] = []

    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        await release.wait()

    limited = ForwardedLimit(app, 2, network_list("127.0.0.1/32"))

    def scope(peer: str, forwarded: str) -> HTTPScope:
        return {  # type: ignore[typeddict-item]
            "type": "http",
            "method": "GET",
            "client": (peer, 40000),
            "headers": [(b"x-forwarded-for", forwarded.encode())],
        }

    async def request(peer: str, forwarded: str) -> None:
        async def send(message: object) -> None:
            if isinstance(message, dict) and message.get("type") == "http.response.start":
                served.append(f"{forwarded} {message['status']}")

        async def receive() -> object:
            raise AssertionError

        await limited(scope(peer, forwarded), receive, send)  # type: ignore[arg-type]

    async with trio.open_nursery() as nursery:
        for _ in range(2):
            nursery.start_soon(request, "127.0.0.1", "203.0.113.7")
        await trio.testing.wait_all_tasks_blocked()
        await request("127.0.0.1", "203.0.113.7")
        assert served == ["203.0.113.7 503"]
        nursery.start_soon(request, "127.0.0.1", "203.0.113.8")  # another client
        nursery.start_soon(request, "192.0.2.1", "203.0.113.7")  # not through the proxy
        await trio.testing.wait_all_tasks_blocked()
        assert served == ["203.0.113.7 503"]
        release.set()
    await request("127.0.0.1", "203.0.113.7")
    assert served == ["203.0.113.7 503"]
