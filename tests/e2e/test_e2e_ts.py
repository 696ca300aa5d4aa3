"""MPEG-TS players end to end: the real service on 127.0.0.1:0 (our accept loop, Hypercorn),
the simulated engine serving real H.264 TS, and ffmpeg, VLC and raw sockets as players."""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import trio

from trioproxy.config import Config
from trioproxy.hls.mpegts import NULL_PACKET
from trioproxy.testing.engine import DEMO_CONTENT_ID, SimulatedEngine, demo_media
from trioproxy.testing.orchestrator import FakeOrchestrator

from ..media import running_service, serve_asgi
from ..tools import require_tools

pytestmark = require_tools("ffmpeg", "ffprobe")
# Polling real time in a loop is how these tests wait for what a real service does.
# ruff: noqa: ASYNC110
vlc = require_tools("cvlc", "runuser")

TS_PATH = f"/ace/getstream?id={DEMO_CONTENT_ID}&format=ts"


@dataclass
class Proxy:
    url: str
    engine: SimulatedEngine
    orchestrator: FakeOrchestrator

    @property
    def ts_url(self) -> str:
        return self.url + TS_PATH

    async def status(self) -> dict[str, Any]:
        async with httpx.AsyncClient() as client:
            answer: dict[str, Any] = (await client.get(f"{self.url}/proxy/status")).json()
            return answer

    async def ts_status(self) -> dict[str, Any]:
        channels = (await self.status())["channels"]
        return dict(channels[0]["ts"]) if channels else {}


@asynccontextmanager
async def running_proxy(engine: SimulatedEngine, **changes: Any) -> AsyncIterator[Proxy]:
    """The real service (as ``trioproxy serve`` runs it) in front of ``engine`` and a fake
    orchestrator; shut down as on SIGTERM on exit."""
    orchestrator = FakeOrchestrator()
    async with serve_asgi(engine) as engine_url, serve_asgi(orchestrator) as orchestrator_url:
        config = Config(
            bind="127.0.0.1:0",
            engines=(engine_url,),
            orchestrator_url=orchestrator_url,
            **changes,
        )
        async with running_service(config, stop_within=15.0) as url:
            yield Proxy(url, engine, orchestrator)


async def ffmpeg_decode(url: str, seconds: float) -> tuple[int, str]:
    done = await trio.run_process(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", url, "-t", str(seconds), "-f", "null", "-"],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    return done.returncode, done.stderr.decode(errors="replace")


async def media_seconds(path: Path) -> float:
    probe = await trio.run_process(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", str(path)],
        capture_stdout=True,
        check=False,
    )
    return float(json.loads(probe.stdout)["format"]["duration"])


async def vlc_record(url: str, seconds: float) -> float:
    """VLC (as an unprivileged user: cvlc refuses root) records ``seconds`` of ``url``; the
    seconds of media in what it wrote."""
    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, 0o777)
        out = Path(folder) / "out.ts"
        command = ["cvlc", "-q", f"--run-time={seconds:g}", "--sout", f"file/ts:{out}"]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "nobody", "--", *command]
        await trio.run_process([*command, url, "vlc://quit"], capture_stderr=True, check=False)
        return await media_seconds(out)


@dataclass
class RawReader:
    """A lean TS player on a raw socket: counts what arrives; ``reading = False`` stops it."""

    url: str
    receive_buffer: int | None = None
    reading: bool = True
    first_byte_after: float | None = None
    first_media_after: float | None = None
    received: int = 0
    closed_by_server: bool = False
    resume: trio.Event = field(default_factory=trio.Event)

    async def run(self) -> None:
        host, port = self.url.removeprefix("http://").split(":")
        sock = trio.socket.socket()
        if self.receive_buffer:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer)
        began = trio.current_time()
        await sock.connect((host, int(port)))
        stream = trio.SocketStream(sock)
        async with stream:
            await stream.send_all(f"GET {TS_PATH} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            head = b""
            while b"\r\n\r\n" not in head:
                head += await stream.receive_some(65536)
            assert head.startswith(b"HTTP/1.1 200"), head[:200]
            body = head.split(b"\r\n\r\n", 1)[1]
            while True:
                if body and self.first_byte_after is None:
                    self.first_byte_after = trio.current_time() - began
                if self.first_media_after is None and body.replace(NULL_PACKET, b"").strip(
                    b"\r\n0123456789abcdef"
                ):
                    self.first_media_after = trio.current_time() - began
                self.received += len(body)
                if not self.reading:
                    await self.resume.wait()
                try:
                    body = await stream.receive_some(65536)
                except trio.BrokenResourceError:
                    body = b""
                if not body:
                    self.closed_by_server = True
                    return


async def test_ffmpeg_decodes_ts_while_another_player_plays_hls() -> None:
    engine = SimulatedEngine(
        demo_media(), durations=[2.0], list_size=6, backlog=12.0, seamless=True
    )
    async with running_proxy(engine) as proxy, trio.open_nursery() as nursery:
        hls: list[tuple[int, str]] = []

        async def hls_player() -> None:
            hls.append(await ffmpeg_decode(f"{proxy.url}/ace/getstream?id={DEMO_CONTENT_ID}", 22))

        nursery.start_soon(hls_player)
        with trio.fail_after(90):
            code, errors = await ffmpeg_decode(proxy.ts_url, 20)
        assert (code, errors) == (0, "")
        ts = await proxy.ts_status()
        assert ts["served"] == 1
        assert ts["cut_lagging"] == 0
    assert hls == [(0, "")]
    assert len(engine.sessions) == 1
    assert proxy.orchestrator.kinds() == ["stream_started", "stream_ended"]


@vlc
async def test_vlc_records_the_ts_stream() -> None:
    engine = SimulatedEngine(
        demo_media(), durations=[2.0], list_size=6, backlog=12.0, seamless=True
    )
    async with running_proxy(engine) as proxy:
        with trio.fail_after(90):
            recorded = await vlc_record(proxy.ts_url, 18)
    assert recorded >= 15.0
    assert len(engine.sessions) == 1


async def test_a_slow_engine_gets_null_packets_after_the_keepalive_then_ffmpeg_and_vlc_play() -> (
    None
):
    """The engine's first segment exists 20 s after the session opens; null packets go out
    from TRIOPROXY_TS_KEEPALIVE (5 s) on."""
    engine = SimulatedEngine(demo_media(), durations=[2.0], prebuffer=20.0, seamless=True)
    recorded: list[float] = []
    async with running_proxy(engine) as proxy, trio.open_nursery() as nursery:
        reader = RawReader(proxy.url)
        nursery.start_soon(reader.run)
        decoded: list[tuple[int, str]] = []

        async def ffmpeg_player() -> None:
            decoded.append(await ffmpeg_decode(proxy.ts_url, 6))

        async def vlc_player() -> None:
            await trio.sleep(1.0)
            recorded.append(await vlc_record(proxy.ts_url, 28))

        nursery.start_soon(ffmpeg_player)
        if shutil.which("cvlc"):
            nursery.start_soon(vlc_player)
        with trio.fail_after(80):
            while not decoded:
                await trio.sleep(0.5)
        assert decoded == [(0, "")]
        assert reader.first_byte_after is not None
        assert 5.0 <= reader.first_byte_after < 6.0
        assert reader.first_media_after is not None
        assert reader.first_media_after >= 20.0
        nursery.cancel_scope.deadline = trio.current_time() + 40
    if shutil.which("cvlc"):
        assert recorded
        assert recorded[0] >= 4.0
    assert len(engine.sessions) == 1


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def test_a_reader_that_stops_is_cut_within_its_lag_while_50_others_play() -> None:
    engine = SimulatedEngine(
        demo_media(), durations=[2.0], list_size=6, backlog=12.0, seamless=True
    )
    # 51 players from one address: over TRIOPROXY_MAX_PLAYERS_PER_ADDRESS (32) unless lifted.
    no_caps = {"max_players_per_channel": 100, "max_players_per_address": 0}
    async with running_proxy(engine, **no_caps) as proxy:  # noqa: SIM117
        async with trio.open_nursery() as nursery:
            others = [RawReader(proxy.url) for _ in range(50)]
            for reader in others:
                nursery.start_soon(reader.run)
            with trio.fail_after(30):
                while any(reader.first_media_after is None for reader in others):
                    await trio.sleep(0.2)
            # A player that reads its first bytes, then nothing (a small receive buffer, so
            # the proxy's writes to it block soon).
            stuck = RawReader(proxy.url, receive_buffer=4096, reading=False)
            rss_before, began = rss_bytes(), trio.current_time()
            nursery.start_soon(stuck.run)
            with trio.fail_after(40):
                while (await proxy.ts_status())["cut_lagging"] == 0:
                    await trio.sleep(0.2)
            cut_after = trio.current_time() - began
            received = [reader.received for reader in others]
            await trio.sleep(6.0)
            ts = await proxy.ts_status()
            assert len(ts["players"]) == 50
            assert ts["cut_lagging"] == 1
            assert all(row["lag_segments"] <= 1 for row in ts["players"])
            # Every other player went on getting each segment (≥ 50 KB per 2 s).
            gained = [
                reader.received - before for reader, before in zip(others, received, strict=True)
            ]
            assert min(gained) >= 2 * 50_000
            assert rss_bytes() - rss_before < 64 << 20
            stuck.resume.set()
            with trio.fail_after(10):
                while not stuck.closed_by_server:
                    await trio.sleep(0.2)
            nursery.cancel_scope.cancel()
    # The lag bound (2 segments of 2 s, after the socket's buffers fill) cut it, not the
    # 20 s send timeout.
    assert cut_after < 20.0


async def test_ffmpeg_decodes_through_a_gap_and_an_upstream_discontinuity() -> None:
    # Segments 0-3 exist at the start; 5 is missing (a gap); 6 restarts the media's clocks and
    # counters (the engine's loop, an EXT-X-DISCONTINUITY).
    engine = SimulatedEngine(demo_media(), durations=[2.0], backlog=8.0, missing={5})
    async with running_proxy(engine) as proxy:
        with trio.fail_after(90):
            code, errors = await ffmpeg_decode(proxy.ts_url, 14)
        assert code == 0, errors
        # A fatal decode error would have stopped ffmpeg with a non-zero code.
        status = await proxy.status()
        assert status["channels"][0]["buffer"]["gaps"] >= 1
    assert len(engine.sessions) == 1
