"""End to end on real sockets: Hypercorn on port 0, the simulated engine serving real MPEG-TS,
and ffprobe/ffmpeg reading our playlist URL as a player would."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import trio

from trioproxy.testing.engine import DEMO_CONTENT_ID, SimulatedEngine, demo_media

from ..media import service_before
from ..tools import require_tools

pytestmark = require_tools("ffmpeg", "ffprobe")


async def test_ffprobe_reads_our_playlist() -> None:
    # The demo media loops every 6 segments (12 s); start 2 segments before a loop point so the
    # 6 s decoded below cross it.
    engine = SimulatedEngine(
        demo_media(), durations=[2.0], list_size=6, backlog=12.0, seamless=True
    )
    async with service_before(engine, stop_within=15) as base:
        url = f"{base}/ace/getstream?id={DEMO_CONTENT_ID}"
        probe = await trio.run_process(
            ["ffprobe", "-v", "error", "-print_format", "json", "-show_streams", url],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        assert probe.returncode == 0, probe.stderr.decode()
        assert probe.stderr == b""
        codecs = {s["codec_name"] for s in json.loads(probe.stdout)["streams"]}
        assert codecs == {"h264"}

        # Decode 6 s of media, live, as a player does (reloading the playlist as it goes).
        play = await trio.run_process(
            ["ffmpeg", "-nostdin", "-v", "error", "-i", url, "-t", "6", "-f", "null", "-"],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        assert play.returncode == 0, play.stderr.decode()
        assert play.stderr == b""

        async with httpx.AsyncClient() as client:
            status = (await client.get(f"{base}/proxy/status")).json()
        assert len(engine.sessions) == 1  # two players, many reloads: one engine session
        (channel,) = status["channels"]
        assert channel["buffer"]["gaps"] == 0
    assert engine.open_sessions == []  # shutdown stopped the engine session


def test_trioproxy_command_reports_a_bad_setting() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "trioproxy", "serve", "--hls-window-size", "zero"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "--hls-window-size" in result.stderr
