"""Several instances as one cluster, in memory on the virtual clock: one engine session per
channel in the whole cluster, relays everywhere else, a dead owner taken over.

The engine serves MPEG-TS (a 2 s segment's bytes every 2 s); leases last 10 s and are renewed
every 10/3 s (``TRIOPROXY_LEASE_SECONDS``).
"""

from __future__ import annotations

import trio
import trio.testing

from trioproxy.channels.upstreams import EngineUpstream, RelayUpstream
from trioproxy.config import Config
from trioproxy.testing.cluster import cluster, instance_url
from trioproxy.testing.engine import SimulatedEngine, demo_media
from trioproxy.testing.harness import CONTENT_A, CONTENT_B, default_config
from trioproxy.testing.orchestrator import FakeOrchestrator

from ..channels.test_ts_upstream import media_bytes, ts_player
from ..ts_client import TsClient


def ts_engine() -> SimulatedEngine:
    return SimulatedEngine(demo_media(), durations=[2.0], formats="ts")


def config() -> Config:
    return default_config(upstream_mode="ts")


async def test_a_channel_asked_of_every_instance_opens_one_engine_session(
    autojump_clock: trio.testing.MockClock,
) -> None:
    engine, orchestrator = ts_engine(), FakeOrchestrator()
    async with cluster(3, config(), engine, orchestrator) as c, trio.open_nursery() as nursery:
        players = [ts_player(h) for h in c.instances]
        nursery.start_soon(players[0].run)
        await trio.sleep(1.0)
        for player in players[1:]:
            nursery.start_soon(player.run)
        await trio.sleep(9.0)
        assert c.owners(CONTENT_A) == [0]
        assert c.relays(CONTENT_A) == [1, 2]
        relay = c.instances[1].channel().upstream
        assert isinstance(relay, RelayUpstream)
        assert relay.owner.url == instance_url(0)
        assert len(engine.sessions) == 1
        assert orchestrator.kinds() == ["stream_started"]
        for player in players:
            assert len(media_bytes(player)) > 100_000, "every player plays"
        # The owner counts each relay as one player of its channel.
        assert len(c.instances[0].channel().ts) == 3
        for player in players:
            player.leave()


async def test_players_of_a_dead_owner_s_channel_play_on_from_a_takeover(
    autojump_clock: trio.testing.MockClock,
) -> None:
    engine, orchestrator = ts_engine(), FakeOrchestrator()
    async with cluster(3, config(), engine, orchestrator) as c, trio.open_nursery() as nursery:
        owner = ts_player(c.instances[0])
        nursery.start_soon(owner.run)
        await trio.sleep(1.0)
        watchers = [ts_player(h) for h in c.instances[1:]]
        for player in watchers:
            nursery.start_soon(player.run)
        await trio.sleep(9.0)
        (first,) = engine.sessions
        killed_at = trio.current_time()
        c.kill(0)
        await trio.sleep(30.0)
        (owner_now,) = c.owners(CONTENT_A)
        assert owner_now in (1, 2)
        assert c.relays(CONTENT_A) == [3 - owner_now]
        channel = c.instances[owner_now].channel()
        assert isinstance(channel.upstream, EngineUpstream)
        # The dead owner's session was stopped; one engine session runs.
        assert engine.sessions[first].stopped
        assert len(engine.open_sessions) == 1
        # The orchestrator heard the dead owner's stream end before the new one started.
        assert orchestrator.kinds() == ["stream_started", "stream_ended", "stream_started"]
        # Players of the other instances kept playing: media within lease + open + a segment.
        for player in watchers:
            later = [at for at, data in player.chunks if at > killed_at and len(data) > 188]
            assert later, "no media after the owner died"
            assert later[0] - killed_at <= 10.0 + 2.0 + 4.0
        for player in watchers:
            player.leave()


async def test_an_engine_s_limit_counts_the_channels_of_the_whole_cluster(
    autojump_clock: trio.testing.MockClock,
) -> None:
    engine = ts_engine()
    one_each = config().replace(max_streams_per_engine=1)
    async with cluster(2, one_each, engine) as c, trio.open_nursery() as nursery:
        first = ts_player(c.instances[0])
        nursery.start_soon(first.run)
        await trio.sleep(5.0)
        # Instance 1 carries nothing itself, but the engine carries the cluster's one channel.
        refused = await c.instances[1].open_playlist(CONTENT_B)
        assert refused.status_code == 503
        assert "no engine has room" in refused.json()["message"]
        assert len(engine.sessions) == 1
        assert await c.leases.holder(CONTENT_B) is None  # the lease it could not use is free
        # The channel it could not open is not in its failure backoff for good: once the first
        # channel stops, it opens.
        first.leave()
        await trio.sleep(30.0)
        assert c.owners(CONTENT_A) == []
        second = TsClient(c.instances[1].app, "/ace/getstream", f"id={CONTENT_B}&format=ts")
        nursery.start_soon(second.run)
        await trio.sleep(40.0)
        assert c.owners(CONTENT_B) == [1]
        second.leave()


async def test_an_engine_s_opening_slots_count_the_opens_of_the_whole_cluster(
    autojump_clock: trio.testing.MockClock,
) -> None:
    engine = SimulatedEngine(demo_media(), durations=[2.0], formats="ts", open_delay=5.0)
    one_open = config().replace(max_opening_per_engine=1, max_streams_per_engine=5)
    async with cluster(2, one_open, engine) as c, trio.open_nursery() as nursery:
        first = ts_player(c.instances[0])
        nursery.start_soon(first.run)
        await trio.sleep(1.0)
        # The engine is opening the cluster's one session: instance 1 waits for the slot.
        second = TsClient(c.instances[1].app, "/ace/getstream", f"id={CONTENT_B}&format=ts")
        nursery.start_soon(second.run)
        await trio.sleep(7.0)  # the first is open at 5 s; opened beside it, B would be at 6 s
        assert len(engine.sessions) == 1
        await trio.sleep(4.0)  # B's open began once the first's slot was free: open by 10.25 s
        assert len(engine.sessions) == 2
        assert c.owners(CONTENT_B) == [1]
        await trio.sleep(3.0)  # its first media at 2 s
        assert len(media_bytes(second)) > 0
        first.leave()
        second.leave()


async def test_a_burst_of_channels_waits_for_the_engine_s_opening_slots(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # One session opened at a time, each taking 1 s: three channels asked at once take turns.
    engine = SimulatedEngine(demo_media(), durations=[2.0], formats="ts", open_delay=1.0)
    orchestrator = FakeOrchestrator()
    settings = default_config(upstream_mode="ts", max_opening_per_engine=1)
    keys = [CONTENT_A, "b" * 40, "c" * 40]
    async with cluster(2, settings, engine, orchestrator) as c, trio.open_nursery() as nursery:
        players = [
            TsClient(c.instances[0].app, "/ace/getstream", f"id={k}&format=ts") for k in keys
        ]
        for player in players:
            nursery.start_soon(player.run)
        await trio.sleep(12.0)
        for key in keys:
            assert c.owners(key) == [0], key
        assert len(engine.open_sessions) == 3
        assert orchestrator.kinds() == ["stream_started"] * 3
        for player in players:
            assert len(media_bytes(player)) > 100_000, "every channel plays"
            player.leave()
