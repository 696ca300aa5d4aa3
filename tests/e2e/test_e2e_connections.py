"""Client connections on real sockets: a slow-header flood under a low open-file limit does not
lock a player out, a client that stops reading is closed and frees what it held, and SIGTERM
exits within ``TRIOPROXY_SHUTDOWN_TIMEOUT`` whatever clients do."""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import trio
from hypercorn.trio import serve as hypercorn_serve
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope

from trioproxy.http.asgi import send_response, serve_lifespan
from trioproxy.http.connections import ConnectionLimits, Connections
from trioproxy.service import hypercorn_config
from trioproxy.testing.engine import DEMO_CONTENT_ID, SimulatedEngine, demo_media

from ..media import guarded_http
from ..tools import require_tools

FD_LIMIT = 256
"""The proxy's open-file limit (soft and hard) in the flood test; its connection cap is 192."""
FLOOD = 400


@asynccontextmanager
async def proxy_process(
    engine_url: str, env: dict[str, str], *, fd_limit: int | None = None
) -> AsyncIterator[tuple[int, trio.Process, list[bytes]]]:
    """``python -m trioproxy serve`` in front of ``engine_url``: its port, process and log."""

    def limit_files() -> None:
        if fd_limit is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (fd_limit, fd_limit))

    full_env = {**os.environ, "TRIOPROXY_ENGINES": engine_url, "TRIOPROXY_BIND": "127.0.0.1:0"}
    full_env.pop("ORCHESTRATOR_URL", None)
    full_env.update(env)
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "trioproxy", "serve"],
        env=full_env,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        preexec_fn=limit_files,
    )
    assert process.stderr is not None
    log = [b""]
    try:
        with trio.fail_after(20):
            while (match := re.search(rb"Running on http://127\.0\.0\.1:(\d+)", log[0])) is None:
                chunk = await process.stderr.receive_some()
                assert chunk, log[0].decode()
                log[0] += chunk
        async with trio.open_nursery() as nursery:

            async def drain() -> None:
                assert process.stderr is not None
                while chunk := await process.stderr.receive_some():
                    log[0] += chunk

            nursery.start_soon(drain)
            yield int(match.group(1)), process, log
            nursery.cancel_scope.cancel()
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def slow_header_client(port: int, source: str) -> None:
    """Open a connection and send a request head a byte a second; reopen when closed."""
    head = b"GET /healthz HTTP/1.1\r\nHost: proxy\r\n"
    while True:
        sock = trio.socket.socket()
        try:
            await sock.bind((source, 0))
            await sock.connect(("127.0.0.1", port))
            for byte in head:
                await sock.send(bytes([byte]))
                with trio.move_on_after(1.0):
                    if not await sock.recv(4096):
                        break
        except OSError:
            pass
        finally:
            sock.close()
        await trio.sleep(0.2)


@require_tools("ffmpeg")
async def test_a_player_plays_through_a_slow_header_flood_at_a_low_file_limit() -> None:
    engine = SimulatedEngine(demo_media(), durations=[2.0], list_size=6, backlog=12.0)
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(hypercorn_serve, engine, hypercorn_config("127.0.0.1:0"))
        # Spread over more addresses than the per-address cap would let through from one.
        env = {"TRIOPROXY_HEADER_TIMEOUT": "2", "TRIOPROXY_MAX_CONNECTIONS_PER_ADDRESS": "64"}
        async with proxy_process(binds[0], env, fd_limit=FD_LIMIT) as (port, process, log):
            async with trio.open_nursery() as flood:
                for i in range(FLOOD):
                    flood.start_soon(slow_header_client, port, f"127.0.1.{1 + i % 10}")
                await trio.sleep(3.0)  # the flood is past the cap and past the file limit
                url = f"http://127.0.0.1:{port}/ace/getstream?id={DEMO_CONTENT_ID}"
                with trio.fail_after(90):
                    played = await trio.run_process(
                        [
                            *("ffmpeg", "-v", "error", "-rw_timeout", "30000000", "-i", url),
                            *("-t", "6", "-f", "null", "-"),
                        ],
                        capture_stderr=True,
                        check=False,
                    )
                async with httpx.AsyncClient(timeout=20) as client:
                    health = await client.get(f"http://127.0.0.1:{port}/healthz")
                flood.cancel_scope.cancel()
            process.send_signal(signal.SIGTERM)
            with trio.fail_after(20):
                await process.wait()
            text = log[0].decode()
        assert played.returncode == 0, played.stderr.decode()[-2000:]
        assert health.status_code == 200
        assert "client connections: at most 192, 64 per address" in text
        assert "Traceback" not in text, text[-3000:]
        assert text.count("cannot accept connections") <= 3
        nursery.cancel_scope.cancel()


async def test_sigterm_exits_in_the_shutdown_timeout_with_clients_that_hold_on() -> None:
    engine = SimulatedEngine(demo_media(), durations=[2.0], list_size=6, backlog=12.0)
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(hypercorn_serve, engine, hypercorn_config("127.0.0.1:0"))
        env = {"TRIOPROXY_SHUTDOWN_TIMEOUT": "4", "TRIOPROXY_SEND_TIMEOUT": "600"}
        async with proxy_process(binds[0], env) as (port, process, log):
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=base, timeout=20) as client:
                playlist = await client.get(
                    "/ace/getstream", params={"id": DEMO_CONTENT_ID}, follow_redirects=True
                )
            segment = next(line for line in playlist.text.splitlines() if line.endswith(".ts"))
            path = httpx.URL(str(playlist.url)).join(segment).raw_path
            # A reader that asks for the segment over and over and stops reading; a connection
            # that never sends a request.
            reader = trio.socket.socket()
            reader.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF, 4096)
            await reader.connect(("127.0.0.1", port))
            request = b"GET %s HTTP/1.1\r\nHost: proxy\r\n\r\n" % path
            await reader.send(request * 400)
            silent = trio.socket.socket()
            await silent.connect(("127.0.0.1", port))
            await trio.sleep(1.0)

            process.send_signal(signal.SIGTERM)
            started = trio.current_time()
            with trio.fail_after(30):
                await process.wait()
            took = trio.current_time() - started
            reader.close()
            silent.close()
        assert process.returncode == 0, log[0].decode()
        # Within the timeout, with room for the interpreter to start exiting on a busy machine.
        assert took < 4 + 3, (took, log[0].decode()[-2000:])
        assert b"Traceback" not in log[0]
        assert engine.open_sessions == []
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def guarded_server(
    limits: ConnectionLimits,
) -> AsyncIterator[tuple[int, Connections, list[str]]]:
    """A tiny app behind :func:`serve_http`: ``/big`` answers 256 MiB; events land in the list."""
    events: list[str] = []

    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        assert scope["type"] == "http"
        body = b"x" * (256 * 1024 * 1024) if scope["path"] == "/big" else b"ok"
        try:
            await send_response(send, 200, [], body)
        finally:
            events.append(f"{scope['path']} done")

    connections = Connections(limits)
    async with guarded_http(app, connections) as port:
        yield port, connections, events


async def test_a_client_that_stops_reading_is_closed_and_the_response_freed() -> None:
    limits = ConnectionLimits(100, 0, header_timeout=5.0, send_timeout=1.0)
    async with guarded_server(limits) as (port, connections, events):
        reader = trio.socket.socket()
        reader.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF, 4096)
        await reader.connect(("127.0.0.1", port))
        await reader.send(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        with trio.fail_after(20):
            while events != ["/big done"]:  # noqa: ASYNC110 (another task's list)
                await trio.sleep(0.1)
        assert len(connections) == 0
        reader.close()


async def test_one_address_holds_at_most_its_share_of_connections() -> None:
    limits = ConnectionLimits(100, 3, header_timeout=30.0, send_timeout=20.0)
    async with guarded_server(limits) as (port, connections, _):
        held = []
        for _ in range(3):
            sock = trio.socket.socket()
            await sock.connect(("127.0.0.1", port))
            held.append(sock)
        with trio.fail_after(10):
            while len(connections) < 3:  # noqa: ASYNC110 (the server's count)
                await trio.sleep(0.05)
        async with httpx.AsyncClient(timeout=10) as client:
            refused = await client.get(f"http://127.0.0.1:{port}/")
            other = trio.socket.socket()
            await other.bind(("127.0.0.2", 0))
            await other.connect(("127.0.0.1", port))
            await other.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            with trio.fail_after(10):
                answer = await other.recv(4096)
            other.close()
            held.pop().close()
            with trio.fail_after(10):
                while len(connections) > 2:  # noqa: ASYNC110 (the server's count)
                    await trio.sleep(0.05)
            served = await client.get(f"http://127.0.0.1:{port}/")
        for sock in held:
            sock.close()
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["error"] == "too_many_connections"
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert served.status_code == 200
