"""The simulated engine's MPEG-TS playback: a continuous, real-time paced stream, and its faults."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import trio
import trio.testing

from trioproxy.testing.asgi_stream import StreamingASGITransport
from trioproxy.testing.engine import (
    DEMO_CONTENT_ID,
    SimulatedEngine,
    TsFaults,
    demo_media,
    is_stream_path,
)
from trioproxy.testing.engine_ts import GARBAGE, MOVED_PID, PTS_JUMP
from trioproxy.testing.faults import FaultyEngine

ENGINE = "http://engine.test:6878"


@asynccontextmanager
async def engine_client(engine: SimulatedEngine) -> AsyncIterator[httpx.AsyncClient]:
    async with trio.open_nursery() as nursery:
        transport = StreamingASGITransport(FaultyEngine(engine), nursery, is_stream_path)
        async with httpx.AsyncClient(transport=transport, base_url=ENGINE) as client:
            yield client
        nursery.cancel_scope.cancel()


async def open_session(client: httpx.AsyncClient, path: str = "/ace/getstream") -> dict[str, str]:
    params = {"id": DEMO_CONTENT_ID, "format": "json", "pid": "p1"}
    response = await client.get(path, params=params)
    answer: dict[str, str] = json.loads(response.text)["response"]
    return answer


async def read_for(
    client: httpx.AsyncClient, url: str, seconds: float
) -> tuple[list[tuple[float, bytes]], bool]:
    """The chunks that arrived within ``seconds`` (when, what), and whether the stream ended."""
    chunks: list[tuple[float, bytes]] = []
    with trio.move_on_after(seconds):
        async with client.stream("GET", url) as response:
            assert response.status_code == 200
            assert response.headers["content-type"] == "video/mp2t"
            async for chunk in response.aiter_raw():
                chunks.append((trio.current_time(), chunk))
            return chunks, True
    return chunks, False


def packets(data: bytes) -> list[bytes]:
    assert len(data) % 188 == 0
    return [data[at : at + 188] for at in range(0, len(data), 188)]


def pid(packet: bytes) -> int:
    return ((packet[1] & 0x1F) << 8) | packet[2]


def video_pts(data: bytes, video: int = 0x100) -> list[int]:
    found = []
    for packet in packets(data):
        if pid(packet) == video and packet[1] & 0x40:
            at = 4 + (1 + packet[4] if packet[3] & 0x20 else 0)
            t = packet[at + 9 :]
            found.append(
                ((t[0] >> 1) & 7) << 30 | t[1] << 22 | (t[2] >> 1) << 15 | t[3] << 7 | t[4] >> 1
            )
    return found


def continuity_errors(data: bytes) -> int:
    last: dict[int, int] = {}
    errors = 0
    for packet in packets(data):
        if not packet[3] & 0x10:
            continue
        cc = packet[3] & 0x0F
        if pid(packet) in last and cc != (last[pid(packet)] + 1) & 0x0F:
            errors += 1
        last[pid(packet)] = cc
    return errors


async def test_a_session_streams_its_media_as_it_arrives_looped_without_a_seam(
    autojump_clock: trio.testing.MockClock,
) -> None:
    engine = SimulatedEngine(demo_media(), durations=[2.0], formats="both", prebuffer=10.0)
    async with engine_client(engine) as client:
        session = await open_session(client)
        assert session["playback_url"].startswith(f"{ENGINE}/ace/r/")
        chunks, ended = await read_for(client, session["playback_url"], 36.0)
    assert not ended
    # Nothing while the engine prebuffers; then one segment every 2 s, in a burst.
    assert chunks[0][0] == 12.0
    assert sorted({at for at, _ in chunks}) == [12.0 + 2 * n for n in range(12)]
    stream = b"".join(data for _, data in chunks)
    # 12 segments: two loops of the 6-segment recording, continuous all the same.
    assert stream.startswith(b"".join(demo_media()))
    assert continuity_errors(stream) == 0
    pts = video_pts(stream)
    assert all(later > earlier for earlier, later in itertools.pairwise(pts))
    assert (pts[-1] - pts[0]) / 90_000 > 23.0
    sim_session = next(iter(engine.sessions.values()))
    assert sim_session.stream.connections == 1
    assert sim_session.stream.open == 0  # the connection closed when the client left


async def test_an_hls_engine_hands_out_its_playlist_and_a_ts_only_engine_no_hls(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with engine_client(SimulatedEngine(demo_media())) as client:
        assert (await open_session(client))["playback_url"].endswith(".m3u8")
    async with engine_client(SimulatedEngine(demo_media(), formats="ts")) as client:
        assert (
            await client.get("/ace/manifest.m3u8", params={"id": "a", "pid": "p"})
        ).status_code == 404
        session = await open_session(client)
        sid = session["playback_session_id"]
        assert (await client.get(f"/ace/m/{DEMO_CONTENT_ID}/{sid}.m3u8")).status_code == 404
        assert (await client.get(f"/ace/c/{sid}/0.ts")).status_code == 404
        chunks, _ = await read_for(client, session["playback_url"], 2.5)
        assert b"".join(data for _, data in chunks) == demo_media()[0]


@pytest.mark.parametrize("fault", ["stall", "disconnect"])
async def test_a_stream_stalls_or_ends_where_told(
    autojump_clock: trio.testing.MockClock, fault: str
) -> None:
    faults = TsFaults(stall_after=3) if fault == "stall" else TsFaults(disconnect_after=3)
    engine = SimulatedEngine(demo_media(), formats="ts", ts_faults={"*": faults})
    async with engine_client(engine) as client:
        session = await open_session(client)
        chunks, ended = await read_for(client, session["playback_url"], 30.0)
    assert b"".join(data for _, data in chunks) == b"".join(demo_media()[:3])
    assert chunks[-1][0] == 6.0
    assert ended == (fault == "disconnect")


async def test_garbage_cut_packets_a_program_change_and_a_clock_jump(
    autojump_clock: trio.testing.MockClock,
) -> None:
    faults = TsFaults(
        garbage=frozenset({1}), cut=frozenset({2}), program_change_at=3, pts_jump_at=4
    )
    engine = SimulatedEngine(demo_media(), formats="ts", ts_faults={"*": faults})
    async with engine_client(engine) as client:
        session = await open_session(client)
        chunks, _ = await read_for(client, session["playback_url"], 10.5)
    stream = b"".join(data for _, data in chunks)
    media = demo_media()
    first = len(media[0])
    assert stream[:first] == media[0]
    assert stream[first : first + len(GARBAGE)] == GARBAGE
    rest = stream[first + len(GARBAGE) + len(media[1]) :]
    assert len(rest) == len(media[2]) - 100 + len(media[3]) + len(media[4])
    moved = rest[len(media[2]) - 100 :]
    assert {pid(p) for p in packets(moved)} == {0, 17, 4096, MOVED_PID}
    before, after = video_pts(moved, MOVED_PID)[0], video_pts(moved, MOVED_PID)[-1]
    assert after - before > PTS_JUMP
