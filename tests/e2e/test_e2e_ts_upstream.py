"""End to end on real sockets: an engine that plays MPEG-TS only (its HLS answers 404), read over
one connection and cut into segments by the proxy; ffmpeg plays the HLS URL and the MPEG-TS URL
of the same channel at once."""

from __future__ import annotations

import trio

from trioproxy.testing.engine import DEMO_CONTENT_ID, SimulatedEngine, demo_media

from ..media import service_before
from ..tools import require_tools

pytestmark = require_tools("ffmpeg")


async def _decode(url: str, seconds: float) -> tuple[int, bytes]:
    play = await trio.run_process(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", url, "-t", f"{seconds:g}", "-f", "null", "-"],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    return play.returncode, play.stderr


async def test_ffmpeg_plays_hls_and_ts_from_a_ts_only_engine() -> None:
    # 12 s of the stream exist when the session opens: they arrive at once, then 2 s at a time.
    engine = SimulatedEngine(demo_media(), durations=[2.0], backlog=12.0, formats="ts")
    async with service_before(engine, stop_within=15) as base:
        hls = f"{base}/ace/getstream?id={DEMO_CONTENT_ID}"
        results: dict[str, tuple[int, bytes]] = {}

        async def play(name: str, url: str) -> None:
            results[name] = await _decode(url, 6.0)

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(play, "hls", hls)
                nursery.start_soon(play, "ts", f"{hls}&format=ts")
        for name, (returncode, errors) in results.items():
            assert returncode == 0, (name, errors.decode())
            assert errors == b"", (name, errors.decode())
        # Two players, two outputs: one engine session, read over one connection.
        (session,) = engine.sessions.values()
        assert session.stream.connections == 1
        assert session.segment_requests == {}  # the engine's HLS was never asked for
    assert engine.open_sessions == []  # shutdown stopped the engine session
    assert session.stream.open == 0
