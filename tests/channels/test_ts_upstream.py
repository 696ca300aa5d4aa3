"""Engine sessions read as one MPEG-TS stream and cut into our own segments (virtual clock).

The engines here play MPEG-TS only (their HLS answers 404) unless a test says otherwise: each
session's media arrives over one connection, a 2 s segment's bytes at once every 2 s. What is
asserted holds for any correct segmenter: segments arrive and are MPEG-TS, players of both kinds
play from the one connection, a new session is spliced in after a discontinuity.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial

import httpx
import pytest
import trio
import trio.testing
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable

from trioproxy.channels.channel import Channel
from trioproxy.hls.mpegts import NULL_PACKET, PACKET_SIZE
from trioproxy.hls.segmenter import Segmenter
from trioproxy.http.asgi import send_response
from trioproxy.testing.asgi_stream import StreamingASGITransport
from trioproxy.testing.engine import SimulatedEngine, TsFaults, demo_media, is_stream_path
from trioproxy.testing.faults import FaultyEngine
from trioproxy.testing.harness import (
    CONTENT_A,
    ENGINE_URL,
    Harness,
    RefusingTransport,
    channel_tasks,
    default_config,
    harness,
)
from trioproxy.testing.players import PlayerLog

from ..ts_client import TsClient

TS_QUERY = f"id={CONTENT_A}&format=ts"
ENGINE_B = "http://engine-b.test:6878"
STALL_DEADLINE = 6 * Segmenter(2.0).target_duration
"""TRIOPROXY_FAILOVER_STALL_TARGETS (6) target durations of the segments the proxy cuts."""


def ts_engine(**changes: object) -> SimulatedEngine:
    return SimulatedEngine(demo_media(), durations=[2.0], formats="ts", **changes)  # type: ignore[arg-type]


def ts_player(h: Harness) -> TsClient:
    return TsClient(h.app, "/ace/getstream", TS_QUERY)


def media_bytes(player: TsClient, since: float = 0.0) -> bytes:
    """What the TS player got that is not null packets, from ``since`` on."""
    return b"".join(
        data
        for at, data in player.chunks
        if at >= since and data != NULL_PACKET * (len(data) // PACKET_SIZE)
    )


def pids(data: bytes) -> list[int]:
    assert len(data) % PACKET_SIZE == 0
    assert data[::PACKET_SIZE] == b"\x47" * (len(data) // PACKET_SIZE)
    return [((data[at + 1] & 0x1F) << 8) | data[at + 2] for at in range(0, len(data), PACKET_SIZE)]


def assert_segments_are_mpegts(channel: Channel) -> None:
    for segment in channel.window:
        assert pids(segment.data)[0] == 0  # whole packets, the PAT first
        assert 0.0 < segment.duration <= 8.0


@dataclass
class Play:
    """An HLS player and a TS player on the channel, until ``until``."""

    hls: PlayerLog
    ts: TsClient


@asynccontextmanager
async def both_players(h: Harness, until: float) -> AsyncIterator[Play]:
    play = Play(PlayerLog(), ts_player(h))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(play.ts.run)
        nursery.start_soon(partial(h.play, await h.start(), until, 2.0, log=play.hls))
        yield play
        await trio.sleep_until(until)
        play.ts.leave()


async def test_hls_and_ts_players_play_from_one_engine_connection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness(engine=ts_engine()) as h:
        async with both_players(h, until=30.0) as play:
            pass
        channel = h.channel()
        assert_segments_are_mpegts(channel)
        # One session, read over one connection; the engine's HLS was never asked for.
        assert len(h.sim.sessions) == 1
        session = next(iter(h.sim.sessions.values()))
        assert session.stream.connections == 1
        assert h.engine.requests["stream"] == 1
        assert h.engine.requests["playlist"] == h.engine.requests["segment"] == 0
        # The HLS player: every playlist answered, a new segment about every 2 s.
        assert set(play.hls.statuses("playlist")) == {200}
        assert play.hls.counts["segment 200"] >= 10
        assert play.hls.gaps == []
        # The TS player: media from the same segments, continuous.
        got = media_bytes(play.ts)
        assert len(got) > 10 * 50_000
        newest = b"".join(segment.data for segment in channel.window.latest(3))
        assert set(pids(got)) == set(pids(newest))  # the same program, whole packets


async def test_a_silent_stream_fails_over_at_its_stall_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    engine = ts_engine()
    async with harness(default_config(proxy_grace_period=3600.0), engine=engine) as h:
        # The players stay 18 s past the switch (at 10 s + the deadline).
        async with both_players(h, until=28.0 + STALL_DEADLINE) as play:
            await trio.sleep(1.0)
            first = h.session_id()
            engine.ts_faults[first] = TsFaults(stall_after=5)  # the last media at 10 s
            channel = h.channel()
            while len(channel.sessions) < 2:  # noqa: ASYNC110 (polls plain data)
                await trio.sleep(0.01)
            switched = channel.sessions[1].started_at
            splice = channel.window.next_sequence
        assert switched == 10.0 + STALL_DEADLINE
        assert channel.sessions[1].opened_at == switched
        reason = channel.sessions[0].reason
        assert reason is not None
        assert "stalled" in reason
        # The new session's first segment comes after a discontinuity; nothing else jumps.
        spliced = channel.window.get(splice)
        assert spliced is not None
        assert spliced.discontinuity
        assert [s.sequence for s in channel.window if s.discontinuity] == [splice]
        # One connection per session; the silent one was stopped and closed.
        assert [s.stream.connections for s in h.sim.sessions.values()] == [1, 1]
        assert h.sim.sessions[first].stopped
        assert h.sim.sessions[first].stream.open == 0
        # Both players played on.
        assert set(play.hls.statuses("playlist")) == {200}
        fetched_after = [r for r in play.hls.requests if r.kind == "segment" and r.at > switched]
        assert len(fetched_after) >= 4
        assert len(media_bytes(play.ts, since=switched)) > 4 * 50_000
        assert h.ended_reasons()[0].startswith("failover: ")


async def test_an_engine_killed_mid_stream_fails_over_to_another(
    autojump_clock: trio.testing.MockClock,
) -> None:
    b = ts_engine()
    async with trio.open_nursery() as streams:
        b_transport = RefusingTransport(
            StreamingASGITransport(FaultyEngine(b), streams, is_stream_path)
        )
        config = default_config(engines=(ENGINE_URL, ENGINE_B), proxy_grace_period=3600.0)
        mounts: dict[str, httpx.AsyncBaseTransport] = {ENGINE_B: b_transport}
        async with harness(config, ts_engine(), mounts=mounts) as h:
            async with both_players(h, until=30.0) as play:
                await trio.sleep(7.0)
                h.engine_transport.refusing = True  # its process dies: the stream breaks
                channel = h.channel()
                while len(channel.sessions) < 2:  # noqa: ASYNC110 (polls plain data)
                    await trio.sleep(0.01)
                assert channel.sessions[1].started_at == 7.0  # at once, not at a stall deadline
                splice = channel.window.next_sequence
            assert channel.engine.base_url == ENGINE_B
            assert [s.stream.connections for s in b.sessions.values()] == [1]
            spliced = channel.window.get(splice)
            assert spliced is not None
            assert spliced.discontinuity
            assert set(play.hls.statuses("playlist")) == {200}
            assert len(media_bytes(play.ts, since=9.0)) > 4 * 50_000
        streams.cancel_scope.cancel()


class PlaylistEngine(SimulatedEngine):
    """Hands out a playback URL without ``.m3u8`` that answers the HLS playlist."""

    def __init__(self, content_type: str) -> None:
        super().__init__(demo_media(), durations=[2.0], formats="both", backlog=6.0)
        self.content_type = content_type

    async def serve_ts(
        self,
        path: str,
        receive: ASGIReceiveCallable,
        send: ASGISendCallable,
        faults: TsFaults | None = None,
    ) -> None:
        session = self.sessions[path.strip("/").split("/")[-1]]
        body = self.playlist(session, trio.current_time()).encode()
        await send_response(send, 200, [(b"content-type", self.content_type.encode())], body)


@pytest.mark.parametrize(
    ("content_type", "why"),
    [
        ("application/octet-stream", "its first bytes"),
        ("application/x-mpegURL", "its content type"),
    ],
)
async def test_a_playback_url_answering_a_playlist_is_read_as_hls(
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    content_type: str,
    why: str,
) -> None:
    caplog.set_level(logging.INFO)
    async with harness(engine=PlaylistEngine(content_type)) as h:
        log = PlayerLog()
        await h.play(await h.start(), until=20.0, log=log)
        assert set(log.statuses("playlist")) == {200}
        assert log.counts["segment 200"] >= 8
        assert h.engine.requests["segment"] >= 8  # the engine's own segments, fetched
        assert len(h.sim.sessions) == 1
    said = [r.getMessage() for r in caplog.records if "is an HLS playlist" in r.getMessage()]
    assert len(said) == 1  # once per session, not per reload
    assert why in said[0]


async def test_a_cold_engine_the_first_segment_follows_the_first_media(
    autojump_clock: trio.testing.MockClock,
) -> None:
    answered: list[tuple[float, int]] = []
    async with harness(engine=ts_engine(prebuffer=20.0)) as h:

        async def first_player() -> None:
            response = await h.open_playlist()  # waits for HLS_INITIAL_SEGMENTS (2)
            answered.append((trio.current_time(), response.status_code))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(first_player)
            await trio.sleep(21.9)
            channel = h.channel()
            assert channel.session is not None  # open, prebuffering: no failover, no error
            assert len(channel.window) == 0
            assert answered == []
        (at, status), *_ = answered
        assert status == 200
        assert at >= 22.0  # the first media arrived at 22 s
        assert len(channel.sessions) == 1
        assert len(channel.window) >= h.config.hls_initial_segments
        assert_segments_are_mpegts(channel)


async def test_cut_packets_and_garbage_do_not_end_the_channel(
    autojump_clock: trio.testing.MockClock,
) -> None:
    faults = TsFaults(garbage=frozenset({1, 4, 8}), cut=frozenset({2, 5, 9}))
    async with harness(engine=ts_engine(ts_faults={"*": faults})) as h:
        async with both_players(h, until=30.0) as play:
            pass
        channel = h.channel()
        assert len(channel.sessions) == 1
        assert set(play.hls.statuses("playlist")) == {200}
        assert play.hls.counts["segment 200"] >= 8
        assert_segments_are_mpegts(channel)
        pids(media_bytes(play.ts))  # the garbage never reaches a player


async def test_a_program_change_and_a_clock_jump_play_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    faults = TsFaults(program_change_at=4, pts_jump_at=8)
    async with harness(engine=ts_engine(ts_faults={"*": faults})) as h:
        async with both_players(h, until=30.0) as play:
            pass
        channel = h.channel()
        assert len(channel.sessions) == 1
        assert set(play.hls.statuses("playlist")) == {200}
        assert play.hls.counts["segment 200"] >= 8
        assert_segments_are_mpegts(channel)
        # The clocks jumped an hour ahead: a discontinuity, not an hour-long segment.
        assert any(segment.discontinuity for segment in channel.window)


async def test_idle_stop_closes_the_one_engine_connection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness(engine=ts_engine()) as h:
        player = ts_player(h)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(player.run)
            await trio.sleep(10.0)
            player.leave()
        session = next(iter(h.sim.sessions.values()))
        assert session.stream.open == 1
        await trio.sleep(4.9)  # PROXY_GRACE_PERIOD is 5 s
        assert session.stream.open == 1
        assert not session.stopped
        await trio.sleep(1.0)
        assert session.stopped
        assert session.stream.open == 0
        assert session.stream.connections == 1
        assert channel_tasks(h.registry) == []
        assert h.registry.get(CONTENT_A) is None
        assert len(h.orchestrator.ended_reasons()) == 1
