"""TS players of an engine's MPEG-TS get media as it arrives (virtual clock, exact times).

The simulated engine sends each 2 s segment's bytes in one burst (32 KiB body messages) every
2 s, the first at 2 s; the proxy gathers whole packets and publishes them at once from 32 KiB,
else 150 ms after the first byte gathered. The segmenter cuts segment N when segment N+1's
keyframe arrives: segment 0 at 4 s.
"""

from __future__ import annotations

import itertools

import httpx
import trio
import trio.testing

from trioproxy.channels.ts_live import GATHER_SECONDS
from trioproxy.hls.mpegts import NULL_PACKET, PACKET_SIZE
from trioproxy.testing.asgi_stream import StreamingASGITransport
from trioproxy.testing.engine import TsFaults, is_stream_path
from trioproxy.testing.faults import FaultyEngine
from trioproxy.testing.harness import ENGINE_URL, RefusingTransport, default_config, harness

from ..ts_client import TsClient
from .test_ts_upstream import ENGINE_B, media_bytes, pids, ts_engine, ts_player

BURSTS = [2.0, 4.0, 6.0]


def media_times(player: TsClient) -> list[float]:
    return sorted({at for at, data in player.chunks if data != NULL_PACKET})


def published(bursts: list[float]) -> list[float]:
    return [at for burst in bursts for at in (burst, burst + GATHER_SECONDS)]


async def test_media_reaches_a_ts_player_before_its_segment_is_cut(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness(engine=ts_engine()) as h, trio.open_nursery() as nursery:
        player = ts_player(h)
        nursery.start_soon(player.run)
        await trio.sleep(3.9)
        assert len(h.channel().window) == 0  # no segment cut yet
        # The burst at 2 s, at once: the head of the segment in progress (PAT first), and
        # whatever of the burst it did not hold yet within 150 ms.
        assert player.chunks[0][0] == 2.0
        assert set(media_times(player)) <= {2.0, 2.0 + GATHER_SECONDS}
        assert pids(player.chunks[0][1])[0] == 0
        await trio.sleep(2.3)
        # Then each burst: 32 KiB at once, the rest 150 ms on.
        assert [at for at in media_times(player) if at >= 4.0] == published(BURSTS[1:])
        player.leave()


async def test_a_player_joining_mid_segment_starts_at_its_head(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness(engine=ts_engine()) as h, trio.open_nursery() as nursery:
        first = ts_player(h)
        nursery.start_soon(first.run)
        await trio.sleep(3.0)
        joiner = ts_player(h)
        nursery.start_soon(joiner.run)
        await trio.sleep(1.5)
        (at, head), *rest = [(at, data) for at, data in joiner.chunks]
        assert at == 3.0  # at once, mid-segment
        # The segment in progress from its head: the very bytes of the segment cut at 4 s
        # (the current PAT, PMT, then media from a keyframe).
        segment = next(iter(h.channel().window))
        assert segment.data.startswith(head)
        assert pids(head)[:2] == pids(segment.data)[:2]
        assert pids(head)[0] == 0
        # Then what arrived after it, as the first player got it (null packets in the pause
        # between the engine's bursts included).
        assert [data for t, data in rest if t >= 4.0] == [
            data for t, data in first.chunks if t >= 4.0
        ]
        assert {data for t, data in rest if t < 4.0} <= {NULL_PACKET}
        first.leave()
        joiner.leave()


async def test_many_players_get_one_write_per_publish(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness(engine=ts_engine()) as h, trio.open_nursery() as nursery:
        players = [ts_player(h) for _ in range(20)]
        for player in players:
            nursery.start_soon(player.run)
        await trio.sleep(6.5)
        for player in players:
            # Once playing: one write per publish, not one per read nor one per segment.
            assert [at for at in media_times(player) if at >= 4.0] == published(BURSTS[1:])
            player.leave()


async def test_a_lagging_player_is_cut_and_the_others_play_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness(engine=ts_engine()) as h, trio.open_nursery() as nursery:
        steady, stuck = ts_player(h), ts_player(h)
        nursery.start_soon(steady.run)
        nursery.start_soon(stuck.run)
        await trio.sleep(4.5)
        stuck.reading = False  # its next write blocks: at 6 s
        await trio.sleep(10.0)
        channel = h.channel()
        assert stuck.finished.is_set()
        assert not stuck.ended
        assert channel.ts.cut == 1
        # TRIOPROXY_TS_MAX_LAG 2 segments of 2 s: cut at the first publish 4 s after 6 s.
        assert max(at for at, _ in stuck.chunks) == 4.0 + GATHER_SECONDS
        later = [at for at in media_times(steady) if at >= 4.0]
        assert later == published([4.0, 6.0, 8.0, 10.0, 12.0, 14.0])
        steady.leave()


async def test_live_players_are_never_silent_for_more_than_a_second(
    autojump_clock: trio.testing.MockClock,
) -> None:
    engine = ts_engine()
    async with harness(engine=engine) as h, trio.open_nursery() as nursery:
        player = ts_player(
            h,
        )
        nursery.start_soon(player.run)
        await trio.sleep(1.0)
        engine.ts_faults[h.session_id()] = TsFaults(stall_after=3)  # bursts at 2, 4, 6 s
        await trio.sleep(10.0)
        assert [at for at in media_times(player) if at >= 4.0] == published(BURSTS[1:])
        nulls = [round(at, 6) for at, data in player.chunks if data == NULL_PACKET]
        # Nothing sent for 1 s brings a null packet, then one every 0.5 s until media: between
        # the engine's bursts (at 2, 4, 6 s; the first goes out whole at 2 s or split at 2 and
        # 2.15 s, as the player's task and the reader happen to run), and through the stall.
        media = media_times(player)
        assert media[0] == 2.0
        expected = [
            round(at, 6)
            for last, following in itertools.pairwise([*media, 11.0])
            for at in (last + 1.0 + 0.5 * n for n in range(20))
            if at <= following
        ]
        assert nulls == expected
        assert nulls[-8:] == [7.15 + 0.5 * n for n in range(8)]  # the stall: 4 s of nulls
        sent = [at for at, _ in player.chunks if at >= 2.15]
        assert max(b - a for a, b in itertools.pairwise(sent)) <= 1.0 + 1e-9
        player.leave()


def unmarked(data: bytes) -> bytes:
    """``data`` with the counters and discontinuity indicators cleared: what a splice leaves."""
    out = bytearray(data)
    for pos in range(0, len(out), PACKET_SIZE):
        out[pos + 3] &= 0xF0
        if out[pos + 3] & 0x20 and out[pos + 4]:
            out[pos + 5] &= 0x7F
    return bytes(out)


def counter_breaks(data: bytes) -> list[int]:
    """Packets whose continuity counter does not follow their PID's last one, unless their
    adaptation field says ``discontinuity_indicator``."""
    last: dict[int, int] = {}
    breaks = []
    for pos in range(0, len(data), PACKET_SIZE):
        pid, flags = ((data[pos + 1] & 0x1F) << 8) | data[pos + 2], data[pos + 3]
        marked = flags & 0x20 and data[pos + 4] and data[pos + 5] & 0x80
        if pid in last and not marked:
            expected = (last[pid] + 1) & 0x0F if flags & 0x10 else last[pid]
            if flags & 0x0F != expected:
                breaks.append(pos // PACKET_SIZE)
        last[pid] = flags & 0x0F
    return breaks


async def test_a_new_session_reaches_live_players_from_its_keyframe_marked_discontinuous(
    autojump_clock: trio.testing.MockClock,
) -> None:
    b = ts_engine()
    b.ts_faults["*"] = TsFaults(join_at=40)  # its stream begins mid-segment
    async with trio.open_nursery() as streams:
        b_transport = RefusingTransport(
            StreamingASGITransport(FaultyEngine(b), streams, is_stream_path)
        )
        config = default_config(engines=(ENGINE_URL, ENGINE_B), proxy_grace_period=3600.0)
        mounts: dict[str, httpx.AsyncBaseTransport] = {ENGINE_B: b_transport}
        async with harness(config, ts_engine(), mounts=mounts) as h, trio.open_nursery() as n:
            player = ts_player(h)
            n.start_soon(player.run)
            await trio.sleep(7.0)
            h.engine_transport.refusing = True  # its process dies: the stream breaks
            channel = h.channel()
            while len(channel.sessions) < 2:  # noqa: ASYNC110 (polls plain data)
                await trio.sleep(0.01)
            splice = channel.window.next_sequence
            await trio.sleep(6.0)
            first = channel.window.get(splice)
            await trio.sleep(6.0)
            player.leave()
        assert first is not None
        assert first.discontinuity
        # Nothing of the new session before its first segment's head (its start, mid-segment,
        # went nowhere); then that segment: PAT, PMT, a keyframe, as cut.
        after = media_bytes(player, since=7.0)
        assert pids(after)[0] == 0
        assert unmarked(after).startswith(unmarked(first.data))
        # The splice marked: the video PID's first packet says discontinuity_indicator, and
        # no counter jumps unmarked across the whole stream.
        video = pids(first.data)[2]
        at = pids(after).index(video) * PACKET_SIZE
        assert after[at + 3] & 0x20
        assert after[at + 5] & 0x80
        assert counter_breaks(media_bytes(player)) == []
        # And it played on.
        assert len(media_bytes(player, since=13.0)) > 2 * 50_000
        streams.cancel_scope.cancel()
