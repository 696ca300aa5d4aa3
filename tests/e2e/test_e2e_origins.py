"""ffmpeg as a live origin, the proxy in front, ffmpeg as the player: real sockets, real media.

For each kind of origin (MPEG-TS segments, fragmented MP4 with an init section, AES-128 encrypted
MPEG-TS), ffmpeg reading through the proxy decodes at least 10 s with no error, the player fetched
consecutive segments only, and the init section and key were fetched from the origin once.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import trio

from trioproxy.config import Config
from trioproxy.testing.engine import SimulatedEngine, demo_media

from ..media import LiveKind, StaticOrigin, ffmpeg_live_hls, proxy_server, serve_asgi
from ..tools import require_tools

pytestmark = [pytest.mark.media, require_tools("ffmpeg", "ffprobe")]

KEY = "e" * 40
SEGMENT = re.compile(r"/ace/hls/[0-9a-f]{40}/[0-9a-f]{32}/([0-9]+)\.(ts|m4s)")


def e2e_config(origin_url: str, **changes: object) -> Config:
    values: dict[str, object] = {
        "engines": (origin_url,),
        "bind": "127.0.0.1:0",
        "hls_initial_segments": 2,
        "hls_window_size": 6,
        "proxy_grace_period": 2.0,
        "hls_client_idle_timeout": 5.0,
    }
    values.update(changes)
    return Config(**values)  # type: ignore[arg-type]


async def decode(url: str, seconds: float, *, audio: bool = True) -> tuple[float, str]:
    """Decode ``seconds`` of ``url`` with ffmpeg: (seconds decoded, error output)."""
    command = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-i", url]
    command += ["-t", str(seconds), "-map", "0:v", *(["-map", "0:a"] if audio else [])]
    command += ["-f", "null", "-progress", "pipe:1", "-"]
    result = await trio.run_process(command, capture_stdout=True, capture_stderr=True, check=False)
    times = re.findall(rb"out_time_us=([0-9]+)", result.stdout)
    decoded = int(times[-1]) / 1e6 if times else 0.0
    errors = result.stderr.decode(errors="replace").strip()
    if result.returncode != 0:
        errors = f"exit {result.returncode}: {errors}"
    return decoded, errors


def segment_numbers(paths: list[str]) -> list[int]:
    return sorted({int(m.group(1)) for p in paths if (m := SEGMENT.fullmatch(p))})


@pytest.mark.parametrize("kind", ["mpegts", "fmp4", "aes128", "master"])
async def test_ffmpeg_plays_a_live_origin_through_the_proxy(kind: LiveKind, tmp_path: Path) -> None:
    origin = StaticOrigin(tmp_path, "/hls/master.m3u8" if kind == "master" else "/hls/index.m3u8")
    async with ffmpeg_live_hls(tmp_path, kind), serve_asgi(origin) as origin_url:  # noqa: SIM117
        async with proxy_server(e2e_config(origin_url)) as proxy:
            with trio.fail_after(60):
                decoded, errors = await decode(f"{proxy.url}/ace/getstream?id={KEY}", 10.5)
            channel = proxy.registry.get(KEY)
            assert channel is not None
            gaps = channel.window.gaps
    assert errors == ""
    assert decoded >= 10.0
    assert gaps == 0
    numbers = segment_numbers(proxy.requests)
    assert len(numbers) >= 8
    assert numbers == list(range(numbers[0], numbers[-1] + 1)), "the player skipped segments"
    if kind == "fmp4":
        assert origin.requests.count("/hls/init.mp4") == 1
        assert any(p.endswith(".mp4") and "/r/" in p for p in proxy.requests)
    if kind == "master":  # the audio rendition came through the proxy too
        assert any(
            re.fullmatch(r"/ace/hls/[0-9a-f]{40}\.r0/[0-9a-f]{32}/[0-9]+\.ts", p)
            for p in proxy.requests
        )
        # The master is read until it exists, then only the variant and rendition are polled.
        first_variant = origin.requests.index("/hls/stream0.m3u8")
        assert "/hls/master.m3u8" not in origin.requests[first_variant:]
    if kind == "aes128":
        assert origin.requests.count("/hls/enc.key") == 1
        assert any(p.endswith(".key") for p in proxy.requests)


async def test_ffmpeg_starts_on_a_slow_engine() -> None:
    """The first segment exists only 20 s after the session opens; defaults, no retry."""
    engine = SimulatedEngine(demo_media(), durations=[2.0], prebuffer=20.0)
    async with serve_asgi(engine) as engine_url:  # noqa: SIM117
        async with proxy_server(e2e_config(engine_url, hls_buffer_ready_timeout=30.0)) as proxy:
            began = trio.current_time()
            with trio.fail_after(60):
                decoded, errors = await decode(
                    f"{proxy.url}/ace/getstream?id={KEY}", 4.0, audio=False
                )
            elapsed = trio.current_time() - began
    assert errors == ""
    assert decoded >= 4.0
    assert elapsed >= 20.0
    assert proxy.requests.count("/ace/getstream") == 1, "ffmpeg had to retry"
    assert len(engine.sessions) == 1
