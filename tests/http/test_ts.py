"""MPEG-TS players on the lean ASGI path: first bytes at once, present exactly while connected,
cut loose when they lag, counted with HLS players (virtual clock, exact times)."""

from __future__ import annotations

import itertools

import trio
import trio.lowlevel
import trio.testing

from trioproxy.channels.status import registry_status
from trioproxy.channels.ts import SPARE_CHUNKS
from trioproxy.hls.mpegts import NULL_PACKET
from trioproxy.hls.window import SegmentMeta
from trioproxy.http import urls
from trioproxy.testing.engine import EngineSession, SimulatedEngine, demo_media
from trioproxy.testing.harness import CONTENT_A, Harness, default_config, harness, small_media

from ..ts_client import TsClient

# default_config(): HLS_INITIAL_SEGMENTS 2, PROXY_GRACE_PERIOD 5 s; TRIOPROXY_TS_MAX_LAG 2.
TS_QUERY = f"id={CONTENT_A}&format=ts"


def ts_client(h: Harness, query: str = TS_QUERY, path: str = "/ace/getstream") -> TsClient:
    return TsClient(h.app, path, query)


def media_chunks(client: TsClient) -> list[tuple[float, bytes]]:
    return [(at, data) for at, data in client.chunks if data != NULL_PACKET]


async def test_silence_for_the_keepalive_then_null_packets_until_media_flows(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """TRIOPROXY_TS_KEEPALIVE (5 s): no null packet first (a media server's probe), none
    late enough to trip an 8 s read timeout (ExoPlayer's) during a 20 s prebuffer."""
    engine = SimulatedEngine(small_media(), durations=[2.0], prebuffer=20.0)
    async with harness(engine=engine) as h, trio.open_nursery() as nursery:
        assert h.config.ts_keepalive == 5.0
        player = ts_client(h)
        nursery.start_soon(player.run)
        await trio.sleep(20.9)
        assert player.status == 200
        assert player.headers[b"content-type"] == b"video/mp2t"
        nulls = [at for at, data in player.chunks if data == NULL_PACKET]
        assert player.chunks[0][0] == 5.0  # nothing before, while the engine prebuffers
        assert nulls == [5.0 + 0.5 * n for n in range(len(nulls))]
        assert len(nulls) == 32  # 5, 5.5, ... 20.5 s
        assert media_chunks(player) == []
        await trio.sleep(5.1)
        media = media_chunks(player)
        assert [data for _, data in media] == [engine.segment_bytes(0), engine.segment_bytes(1)]
        # Once media flows, no null packets between segments that arrive on time.
        assert max(at for at, data in player.chunks if data == NULL_PACKET) <= media[0][0]
        player.leave()
    assert len(h.sim.sessions) == 1


async def test_keepalive_in_the_query_sets_the_silence_before_null_packets(
    autojump_clock: trio.testing.MockClock,
) -> None:
    engine = SimulatedEngine(small_media(), durations=[2.0], prebuffer=10.0)
    async with harness(engine=engine) as h, trio.open_nursery() as nursery:
        soon = ts_client(h, TS_QUERY + "&keepalive=2")
        never = ts_client(h, TS_QUERY + "&keepalive=0")
        nursery.start_soon(soon.run)
        nursery.start_soon(never.run)
        await trio.sleep(9.9)
        nulls = [at for at, data in soon.chunks if data == NULL_PACKET]
        assert nulls == [2.0 + 0.5 * n for n in range(16)]  # 2, 2.5, ... 9.5 s
        assert never.status is None
        assert never.chunks == []
        await trio.sleep(5.0)
        assert never.status == 200
        assert media_chunks(never)
        assert never.chunks[0][1] != NULL_PACKET
        soon.leave()
        never.leave()


async def test_an_invalid_keepalive_is_a_json_400(autojump_clock: trio.testing.MockClock) -> None:
    async with harness() as h:
        for value in ("x", "-1", "nan", "1e9"):
            player = ts_client(h, f"{TS_QUERY}&keepalive={value}")
            await player.run()
            assert player.status == 400
            assert player.headers[b"content-type"] == b"application/json"
            assert b"keepalive" in player.body


async def test_a_new_player_gets_the_newest_segment_at_once_then_each_as_it_arrives(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h, trio.open_nursery() as nursery:
        channel = await h.wait_channel()
        joined = trio.current_time()
        newest = channel.window.latest(1)[0]
        player = ts_client(h)
        nursery.start_soon(player.run)
        await trio.sleep(4.1)
        media = media_chunks(player)
        assert media[0] == (joined, newest.data)
        assert [data for _, data in media[1:]] == [
            s.data for s in channel.window if s.sequence > newest.sequence
        ]
        assert len(media) == 3
        status = (await h.client.get("/proxy/status")).json()["channels"][0]["ts"]
        (row,) = status["players"]
        assert row["bytes_sent"] == sum(len(data) for _, data in player.chunks)
        assert (row["lag_segments"], row["lag_seconds"]) == (0, 0.0)
        player.leave()
    assert len(h.sim.sessions) == 1
    assert h.orchestrator.kinds().count("stream_started") == 1


async def test_a_ts_player_is_gone_when_it_leaves_and_the_channel_stops_after_grace(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h, trio.open_nursery() as nursery:
        player = ts_client(h)
        nursery.start_soon(player.run)
        await trio.sleep(120.0)  # no HLS player, no playlist request: the TS player alone
        channel = h.channel()
        assert len(channel.ts) == 1
        assert not channel.stopping
        player.leave()
        await player.finished.wait()
        left = trio.current_time()
        assert left == 120.0
        assert len(channel.ts) == 0
        assert channel.player_count(left) == 0
        await channel.closed.wait()
        assert channel.end_reason == "no players"
        assert h.orchestrator.kinds() == ["stream_started", "stream_ended"]
        assert h.orchestrator.events[1].at == left + 5.0


async def test_the_channel_ending_ends_the_response(autojump_clock: trio.testing.MockClock) -> None:
    async with harness() as h, trio.open_nursery() as nursery:
        player = ts_client(h)
        nursery.start_soon(player.run)
        await trio.sleep(10.0)
        assert h.registry.stop_channel(CONTENT_A)
        with trio.fail_after(1):
            await player.finished.wait()
        assert player.ended


async def test_a_player_that_stops_reading_is_cut_loose_and_slows_nobody(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h, trio.open_nursery() as nursery:
        channel = await h.wait_channel()
        stuck, others = ts_client(h), [ts_client(h) for _ in range(5)]
        stuck.reading = False  # its first write never completes
        for player in [stuck, *others]:
            nursery.start_soon(player.run)
        began = trio.current_time()
        await trio.lowlevel.checkpoint()
        with trio.fail_after(10):
            await stuck.finished.wait()
        # Cut when a segment arrives and the one it is stuck on (the newest when it joined)
        # came two segment durations ago or more (2 s segments).
        assert 4.0 <= trio.current_time() - began <= 6.0
        assert channel.ts.cut == 1
        assert len(channel.ts) == 5
        await trio.sleep(20.0)
        for player in others:
            # The newest at once, then each segment as it arrives, every 2 s: nobody waited.
            times = [at for at, _ in media_chunks(player)]
            assert times[0] == began
            assert {round(b - a, 6) for a, b in itertools.pairwise(times[1:])} == {2.0}
            assert len(times) == 12
        for player in others:
            player.leave()


async def test_the_player_cap_counts_hls_and_ts_players(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness(default_config(max_players_per_channel=2)) as h, trio.open_nursery() as n:
        assert (await h.open_playlist()).status_code == 200
        first = ts_client(h)
        n.start_soon(first.run)
        await first.started.wait()
        assert first.status == 200
        second = ts_client(h)
        await second.run()
        assert second.status == 503
        assert b"TRIOPROXY_MAX_PLAYERS_PER_CHANNEL" in second.body
        # A new HLS player is refused at /ace/getstream already, before any redirect.
        refused = await h.client.get("/ace/getstream", params={"id": CONTENT_A})
        assert refused.status_code == 503
        assert "TRIOPROXY_MAX_PLAYERS_PER_CHANNEL" in refused.json()["message"]
        first.leave()


async def test_stream_mode_and_format_choose_ts_or_hls(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness(default_config(stream_mode="TS")) as h, trio.open_nursery() as nursery:
        # STREAM_MODE=TS: /ace/getstream without format is TS; format=hls asks for HLS.
        player = ts_client(h, f"infohash={CONTENT_A}")
        nursery.start_soon(player.run)
        await player.started.wait()
        assert player.headers[b"content-type"] == b"video/mp2t"
        hls = await h.client.get("/ace/getstream", params={"id": CONTENT_A, "format": "hls"})
        assert hls.status_code == 302
        # /ace/manifest.m3u8 stays HLS without format, and is TS with format=ts.
        manifest = await h.client.get("/ace/manifest.m3u8", params={"id": CONTENT_A})
        assert manifest.status_code == 302
        second = ts_client(h, path="/ace/manifest.m3u8")
        nursery.start_soon(second.run)
        await second.started.wait()
        assert second.headers[b"content-type"] == b"video/mp2t"
        assert len(h.sim.sessions) == 1
        assert len(h.channel().ts) == 2
        player.leave()
        second.leave()


async def test_head_on_a_ts_url_starts_nothing(autojump_clock: trio.testing.MockClock) -> None:
    async with harness() as h:
        probe = TsClient(h.app, "/ace/getstream", TS_QUERY, "HEAD")
        await probe.run()
        assert probe.status == 200
        assert probe.headers[b"content-type"] == b"video/mp2t"
        assert probe.body == b""
        await trio.sleep(1.0)
        assert h.sim.sessions == {}
        assert h.registry.channels == []


async def test_a_bad_id_on_a_ts_url_is_a_json_400(autojump_clock: trio.testing.MockClock) -> None:
    async with harness() as h:
        bad = ts_client(h, "id=nothex&format=ts")
        await bad.run()
        assert bad.status == 400
        assert bad.headers[b"content-type"] == b"application/json"
        assert h.sim.sessions == {}


async def test_an_fmp4_channel_gets_a_406_naming_why(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        channel = await h.wait_channel()
        channel.window.append(b"\x00" * 100, 2.0, meta=SegmentMeta(extension="m4s", init=0))
        refused = ts_client(h)
        await refused.run()
        assert refused.status == 406
        assert b"fragmented MP4" in refused.body
        assert b"format=hls" in refused.body
        assert len(channel.ts) == 0


async def test_a_source_has_a_ts_url(autojump_clock: trio.testing.MockClock) -> None:
    config = default_config(sources=(("news", "http://engine.test:6878/ace/m/x/y.m3u8"),))
    async with harness(config) as h:
        unknown = ts_client(h, "", "/sources/nothing.ts")
        await unknown.run()
        assert unknown.status == 404
        probe = TsClient(h.app, "/sources/news.ts", "", "HEAD")
        await probe.run()
        assert probe.status == 200
        assert probe.headers[b"content-type"] == b"video/mp2t"
        assert h.registry.channels == []


def test_the_ts_urls_of_the_contract() -> None:
    assert urls.ts_url("", CONTENT_A) == f"/ace/getstream?id={CONTENT_A}&format=ts"
    assert urls.ts_url("/m", CONTENT_A, infohash=True) == (
        f"/m/ace/getstream?infohash={CONTENT_A}&format=ts"
    )
    assert urls.source_ts_url("", "news") == "/sources/news.ts"
    getstream, manifest = urls.GETSTREAM.rule, urls.MANIFEST.rule
    assert urls.match_ts(getstream, {"format": "ts"}, "HLS") == urls.TsRequest(None)
    assert urls.match_ts(getstream, {}, "HLS") is None
    assert urls.match_ts(getstream, {}, "TS") == urls.TsRequest(None)
    assert urls.match_ts(getstream, {"format": "HLS"}, "TS") is None
    assert urls.match_ts(manifest, {}, "TS") is None
    assert urls.match_ts(manifest, {"format": "ts"}, "HLS") == urls.TsRequest(None)
    assert urls.match_ts("/sources/news.ts", {}, "HLS") == urls.TsRequest("news")
    assert urls.match_ts("/sources/news.m3u8", {"format": "ts"}, "HLS") == urls.TsRequest("news")
    assert urls.match_ts("/sources/news.m3u8", {}, "TS") is None


async def test_a_burst_of_segments_cuts_no_one(autojump_clock: trio.testing.MockClock) -> None:
    # The engine has 10 segments when the session opens: they all arrive at once.
    engine = SimulatedEngine(small_media(), durations=[2.0], backlog=20.0, list_size=10)
    async with harness(engine=engine) as h, trio.open_nursery() as nursery:
        players = [ts_client(h) for _ in range(3)]
        for player in players:
            nursery.start_soon(player.run)
        await trio.sleep(10.0)
        channel = h.channel()
        assert channel.ts.cut == 0
        assert len(channel.ts) == 3
        for player in players:
            sequences = [data[0] for _, data in media_chunks(player)]  # small_media: byte n
            assert sequences == list(range(sequences[0], sequences[0] + len(sequences)))
            assert len(sequences) >= 5
            player.leave()


async def test_a_stall_brings_null_packets_to_every_player_whoever_leaves(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h, trio.open_nursery() as nursery:
        channel = await h.wait_channel()
        players = [ts_client(h) for _ in range(8)]
        for player in players:
            nursery.start_soon(player.run)
        await trio.sleep(4.0)
        reads = h.engine.requests["playlist"]
        h.engine.faults["*"] = "stall"  # the playlist stops moving at its next read
        while h.engine.requests["playlist"] == reads:  # noqa: ASYNC110 (the engine's count)
            await trio.sleep(0.01)
        await trio.sleep(0.01)  # the segments that playlist lists are in
        last = channel.ts.last_arrival
        due = last + 2.0 + 0.5  # one segment duration, then the keep-alive interval
        assert trio.current_time() < due
        # Players leave while every one waits for the next segment: whichever of them timed
        # that wait for the others, the one that stays gets its null packets on time.
        *leaving, stayed = players
        for player in leaving:
            player.leave()
        await trio.sleep_until(due + 1.6)
        assert max(at for at, _ in media_chunks(stayed)) == last
        nulls = [at for at, data in stayed.chunks if data == NULL_PACKET]
        assert nulls == [due, due + 0.5, due + 1.0, due + 1.5]
        stayed.leave()


async def test_spliced_copies_are_bounded_by_the_lag_and_charged_to_the_memory_budget(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Real MPEG-TS with segments missing upstream: after the first gap the splicer continues
    # the continuity counters, so every segment a TS player gets is a copy.
    media = demo_media()
    engine = SimulatedEngine(media, durations=[2.0], backlog=6.0, missing={8, 15, 22, 29})
    async with harness(engine=engine) as h, trio.open_nursery() as nursery:
        player = ts_client(h)
        nursery.start_soon(player.run)
        channel = await h.wait_channel()
        bound = (channel.ts.max_lag + SPARE_CHUNKS) * max(len(data) for data in media)
        counted, held, charged = [], [], []
        for _ in range(40):  # 80 s: 40 segments, 4 of them missing
            await trio.sleep(2.0)
            memory = registry_status(h.registry)["limits"]["memory"]
            counted.append(memory["held_bytes"] - channel.window.total_bytes)
            held.append(channel.ts.held_bytes)
            charged.append(channel.ts.charged_bytes)
        assert channel.window.gaps == 4
        assert min(counted[-20:]) > 0  # the budget counts more than the window: the copies
        assert counted == charged
        assert max(held) <= bound
        assert channel.ts.cut == 0  # and the player kept up: it got every segment
        received = b"".join(data for _, data in media_chunks(player))
        assert len(received) >= 30 * min(len(data) for data in media)
        player.leave()
        await channel.closed.wait()
    memory = registry_status(h.registry)["limits"]["memory"]
    assert (memory["charged_bytes"], memory["held_bytes"], memory["accounts"]) == (0, 0, 0)


class PlaceholderTarget(SimulatedEngine):
    """An engine that lists ``#EXT-X-TARGETDURATION:3600`` while it prebuffers (no segment yet)."""

    def playlist(self, session: EngineSession, now: float) -> str:
        text = super().playlist(session, now)
        if self.produced(session, now) == 0:
            text = text.replace("#EXT-X-TARGETDURATION:2\n", "#EXT-X-TARGETDURATION:3600\n")
        return text


async def test_a_declared_target_duration_of_an_hour_still_cuts_a_lagging_player_in_seconds(
    autojump_clock: trio.testing.MockClock,
) -> None:
    engine = PlaceholderTarget(small_media(), durations=[2.0], prebuffer=4.0)
    async with harness(engine=engine) as h, trio.open_nursery() as nursery:
        reader = ts_client(h)
        nursery.start_soon(reader.run)
        channel = await h.wait_channel()
        assert channel.window.target_duration == 3600  # what the upstream declared sticks
        stuck = ts_client(h)
        stuck.reading = False  # its first write, the newest segment, never completes
        stuck_on = channel.ts.last_arrival
        nursery.start_soon(stuck.run)
        with trio.fail_after(60):
            await stuck.finished.wait()
        # Segments of 2 s: cut when one arrives and the one it is stuck on came 2 × 2 s ago
        # (TRIOPROXY_TS_MAX_LAG 2), not 2 × 3600 s.
        assert trio.current_time() == stuck_on + 4.0
        assert channel.ts.cut == 1
        # A stall: null packets one segment duration (2 s) and a keep-alive interval after
        # the last segment, not an hour later.
        reads = h.engine.requests["playlist"]
        h.engine.faults["*"] = "stall"
        while h.engine.requests["playlist"] == reads:  # noqa: ASYNC110 (the engine's count)
            await trio.sleep(0.01)
        await trio.sleep(0.01)
        due = channel.ts.last_arrival + 2.0 + 0.5
        await trio.sleep_until(due + 0.1)
        nulls = [at for at, data in reader.chunks if data == NULL_PACKET and at > stuck_on]
        assert nulls == [due]
        reader.leave()
