"""End to end on real sockets: an engine that plays MPEG-TS only (its HLS answers 404), read over
one connection and cut into segments by the proxy. ffmpeg and VLC play the HLS URL and the
MPEG-TS URL of the same channel at once; the engine dies under them and they play on; a cold
engine's TS URL starts with media; the segments the proxy cuts are ones a player can start on.

The simulated engine counts its playback connections per session (``stream.connections``) and
the requests for its HLS (``segment_requests``): one connection, no HLS, whatever the players.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Mapping
from urllib.parse import urljoin

import httpx
import trio

from trioproxy.testing.engine import DEMO_CONTENT_ID, SimulatedEngine, demo_media

from ..media import ffmpeg_decoding, service_before
from ..media_ts import probe_packets, pts_span, segment_problems
from ..tools import require_tools
from .test_e2e_failover import (
    FPS,
    assert_decoded_through,
    assert_two_sessions,
    failover_rig,
    playing,
    switched,
)

pytestmark = require_tools("ffmpeg", "ffprobe")
vlc = require_tools("cvlc", "runuser")

CLOCK = 90_000
"""PTS ticks per second."""


def ts_only_engine(*, backlog: float = 12.0, prebuffer: float = 0.0) -> SimulatedEngine:
    """An engine that plays MPEG-TS only, in 2 s segments. ``backlog`` seconds of the stream
    exist when a session opens (they arrive at once, then 2 s at a time); or nothing comes
    for ``prebuffer`` seconds."""
    return SimulatedEngine(
        demo_media(), durations=[2.0], formats="ts", backlog=backlog, prebuffer=prebuffer
    )


def assert_one_connection_no_hls(engine: SimulatedEngine) -> None:
    """One engine session, read over one MPEG-TS connection; the engine's HLS never asked."""
    (session,) = engine.sessions.values()
    assert session.stream.connections == 1
    assert session.segment_requests == {}


async def _decode(url: str, seconds: float) -> tuple[int, bytes]:
    play = await trio.run_process(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", url, "-t", f"{seconds:g}", "-f", "null", "-"],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    return play.returncode, play.stderr


async def vlc_play(url: str, seconds: float) -> dict[str, int]:
    """VLC (as an unprivileged user: cvlc refuses root) plays ``url`` in real time for
    ``seconds``, video and audio to null outputs; its statistics then, as its ``stats`` command
    prints them (``video decoded``, ``frames displayed``, ``demux corrupted``, ...)."""
    command = ["cvlc", "-I", "cli", "-V", "dummy", "-A", "dummy", "--verbose=0", url]
    if os.geteuid() == 0:
        command = ["runuser", "-u", "nobody", "--", *command]
    process = await trio.lowlevel.open_process(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert process.stdin is not None
    assert process.stdout is not None
    stdin, stdout = process.stdin, process.stdout
    printed = b""
    try:
        await trio.sleep(seconds)
        await stdin.send_all(b"stats\n")
        with trio.fail_after(10):
            while b"end of statistical info" not in printed:
                chunk = await stdout.receive_some(65536)
                assert chunk, printed.decode(errors="replace")
                printed += chunk
        await stdin.send_all(b"quit\n")
        with trio.move_on_after(10):
            await process.wait()
    finally:
        if process.poll() is None:
            process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()
        await stdin.aclose()
        await stdout.aclose()
    text = printed.decode(errors="replace")
    return {
        name.strip(): int(value)
        for name, value in re.findall(r"\|\s*([a-z ]+?)\s*:\s*(\d+)\s*$", text, re.MULTILINE)
    }


async def test_ffmpeg_plays_hls_and_ts_from_a_ts_only_engine() -> None:
    engine = ts_only_engine()
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
        assert_one_connection_no_hls(engine)
        (session,) = engine.sessions.values()
    assert engine.open_sessions == []  # shutdown stopped the engine session
    assert session.stream.open == 0


@vlc
async def test_vlc_and_ffmpeg_play_hls_and_ts_from_a_ts_only_engine_at_once() -> None:
    engine = ts_only_engine()
    seconds = 8.0
    async with service_before(engine, stop_within=15) as base:
        hls = f"{base}/ace/getstream?id={DEMO_CONTENT_ID}"
        ts = f"{hls}&format=ts"
        vlc_stats: dict[str, Mapping[str, int]] = {}
        ffmpeg: dict[str, tuple[int, bytes]] = {}

        async def vlc_player(name: str, url: str) -> None:
            vlc_stats[name] = await vlc_play(url, seconds)

        async def ffmpeg_player(name: str, url: str) -> None:
            ffmpeg[name] = await _decode(url, 6.0)

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(vlc_player, "hls", hls)
                nursery.start_soon(vlc_player, "ts", ts)
                nursery.start_soon(ffmpeg_player, "hls", hls)
                nursery.start_soon(ffmpeg_player, "ts", ts)
        for name, (returncode, errors) in ffmpeg.items():
            assert (returncode, errors.decode()) == (0, ""), name
        for name, stats in vlc_stats.items():
            print(f"VLC on {name}: {stats}")
            # VLC showed pictures for most of the time it played (it buffers a little first)
            # and its demuxer found nothing broken in what it read.
            assert stats["frames displayed"] >= (seconds - 4.0) * FPS, (name, stats)
            assert stats["video decoded"] >= stats["frames displayed"], (name, stats)
            assert stats["demux corrupted"] == 0, (name, stats)
            assert stats["discontinuities"] == 0, (name, stats)
        # Four players over two URLs: one engine session, read over one connection.
        assert_one_connection_no_hls(engine)


async def test_players_play_on_when_the_ts_engine_serving_them_is_killed() -> None:
    made: list[SimulatedEngine] = []

    def make() -> SimulatedEngine:
        made.append(ts_only_engine())
        return made[-1]

    async with (
        failover_rig(2, make=make) as rig,
        ffmpeg_decoding(rig.hls_url, FPS) as hls,
        ffmpeg_decoding(rig.ts_url, FPS) as ts,
    ):
        a, b = rig.engines
        await playing(rig, hls, ts)
        await trio.sleep(2.0)
        since = (await rig.channel())["buffer"]["last_sequence"]
        killed = trio.current_time()
        await a.kill()
        switch = await switched(rig, since) - killed
        # What an HLS player reads once the new session's first segment is in: it comes after
        # a discontinuity (its clocks start anew).
        playlist = (await rig.http.get(rig.hls_url, follow_redirects=True)).text
        await trio.sleep(8.0)
        end = trio.current_time()
        for decoder in (hls, ts):
            assert_decoded_through(decoder, killed, end, switch)
            # ... and still does, on the new session's live segments (one every 2 s).
            assert decoder.decoded(end) - decoder.decoded(end - 4.0) >= 1.0, decoder.samples
        print(f"switched {switch:.2f} s after the kill, over {end - killed:.1f} s")
        assert "#EXT-X-DISCONTINUITY\n" in playlist, playlist
        assert_two_sessions(await rig.channel(), a, b)
    for engine in made:
        assert_one_connection_no_hls(engine)


async def test_a_cold_ts_only_engine_ts_url_plays_and_starts_with_media() -> None:
    """Nothing for 20 s after the session opens; the TS URL with its default keepalive."""
    engine = ts_only_engine(backlog=0.0, prebuffer=20.0)
    async with service_before(engine, stop_within=15) as base:
        url = f"{base}/ace/getstream?id={DEMO_CONTENT_ID}&format=ts"
        probe_command = [
            "ffprobe", "-v", "error", "-read_intervals", "%+#8",
            "-show_entries", "packet=codec_type", "-of", "json", url,
        ]  # fmt: skip
        probed: list[subprocess.CompletedProcess[bytes]] = []
        played: list[tuple[int, bytes]] = []

        async def probe() -> None:
            probed.append(
                await trio.run_process(
                    probe_command,
                    capture_stdout=True,
                    capture_stderr=True,
                    check=False,
                )
            )

        async def play() -> None:
            played.append(await _decode(url, 4.0))

        began = trio.current_time()
        with trio.fail_after(80):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(probe)
                nursery.start_soon(play)
        waited = trio.current_time() - began
        ((returncode, errors),) = played
        assert (returncode, errors.decode()) == (0, "")
        (cold,) = probed
        assert cold.returncode == 0, cold.stderr.decode()
        first = [p["codec_type"] for p in json.loads(cold.stdout)["packets"]]
        assert len(first) >= 8
        assert set(first) <= {"video", "audio"}, first
        assert waited >= 20.0  # no media exists before the engine has some
        assert_one_connection_no_hls(engine)


async def test_the_proxy_cuts_segments_a_player_can_start_on() -> None:
    engine = ts_only_engine()
    targets: list[int] = []
    listed: list[list[str]] = []
    durations: dict[str, float] = {}
    segments: dict[str, bytes] = {}
    async with (
        service_before(engine, stop_within=15) as base,
        httpx.AsyncClient(timeout=20) as client,
    ):
        first = await client.get(f"{base}/ace/getstream?id={DEMO_CONTENT_ID}")
        assert first.status_code == 302
        playlist_url = urljoin(base, first.headers["location"])
        # Reload as a player does, over three new segments' worth of time; fetch the first
        # three segments listed.
        with trio.fail_after(40):
            for _ in range(8):
                reload = await client.get(playlist_url)
                assert reload.status_code == 200
                (target,) = re.findall(r"^#EXT-X-TARGETDURATION:(\d+)$", reload.text, re.M)
                targets.append(int(target))
                found = re.findall(r"^#EXTINF:([\d.]+),.*\n(\S+)$", reload.text, re.M)
                listed.append([uri for _, uri in found])
                for extinf, uri in found:
                    durations[uri] = float(extinf)
                    if len(segments) < 3 and uri not in segments:
                        answer = await client.get(urljoin(playlist_url, uri))
                        assert answer.status_code == 200
                        segments[uri] = answer.content
                await trio.sleep(1.0)
    assert len(segments) == 3
    assert set(listed[-1]) - set(listed[0])  # new segments came while it reloaded
    assert set(targets) == {targets[0]}, targets  # the target duration never changed
    # RFC 8216 §4.3.3.1: each EXTINF, rounded to the nearest integer, is at most the target.
    assert all(round(duration) <= targets[0] for duration in durations.values()), durations
    for uri, data in segments.items():
        packets = await trio.to_thread.run_sync(probe_packets, data)
        assert segment_problems(data, probed=packets) == [], uri
        span, frame = pts_span(packets, "video")
        assert frame > 0
        assert abs(round(durations[uri] * CLOCK) - span) <= frame, (uri, durations[uri], span)
    assert_one_connection_no_hls(engine)
