"""The cluster's store unreachable, or restarted empty (in memory, virtual clock): channels play
on; a channel opened meanwhile plays at once, and a duplicate is gone once the store is back.

Leases last 10 s and are renewed every 10/3 s (``TRIOPROXY_LEASE_SECONDS``).
"""

from __future__ import annotations

import trio
import trio.testing

from trioproxy.testing.cluster import cluster
from trioproxy.testing.harness import CONTENT_A

from ..channels.test_ts_upstream import media_bytes, ts_player
from .test_ownership import config, ts_engine

RENEWAL = 10.0 / 3


async def test_running_channels_play_on_while_the_store_is_down_and_after_it_forgot_them(
    autojump_clock: trio.testing.MockClock,
) -> None:
    engine = ts_engine()
    async with cluster(2, config(), engine) as c, trio.open_nursery() as nursery:
        owner, relay = ts_player(c.instances[0]), ts_player(c.instances[1])
        nursery.start_soon(owner.run)
        await trio.sleep(1.0)
        nursery.start_soon(relay.run)
        await trio.sleep(9.0)
        c.leases.down = True
        await trio.sleep(60.0)  # six leases
        assert c.owners(CONTENT_A) == [0]
        assert c.relays(CONTENT_A) == [1]
        c.leases.forget()
        c.leases.down = False
        await trio.sleep(2 * RENEWAL)
        # The owner took its lease again; nothing moved, nothing was opened twice.
        holder = await c.leases.holder(CONTENT_A)
        assert holder is not None
        assert holder.instance.url == "http://instance-0.test"
        assert c.owners(CONTENT_A) == [0]
        assert len(engine.sessions) == 1
        assert c.orchestrator.kinds() == ["stream_started"]
        for player in (owner, relay):
            late = [at for at, data in player.chunks if at >= 60.0 and len(data) > 188]
            assert late, "a player stopped getting media"
            player.leave()


async def test_a_channel_opened_twice_while_the_store_is_down_is_opened_once_after(
    autojump_clock: trio.testing.MockClock,
) -> None:
    engine = ts_engine()
    async with cluster(2, config(), engine) as c, trio.open_nursery() as nursery:
        c.leases.down = True
        players = [ts_player(h) for h in c.instances]
        for player in players:
            nursery.start_soon(player.run)
        await trio.sleep(10.0)
        # Both instances play at once, each from a session of its own: nobody could tell them.
        assert sorted(c.owners(CONTENT_A)) == [0, 1]
        assert len(engine.open_sessions) == 2
        assert c.orchestrator.kinds() == []  # started is held until the lease is known
        back = trio.current_time()
        c.leases.down = False
        await trio.sleep(RENEWAL + 4.0)
        # One kept its session and took the lease; the other relays it and stopped its own.
        (owner,) = c.owners(CONTENT_A)
        assert c.relays(CONTENT_A) == [1 - owner]
        assert len(engine.open_sessions) == 1
        # The orchestrator heard of one stream only: the loser's start and end were dropped.
        assert c.orchestrator.kinds() == ["stream_started"]
        for player in players:
            assert len(media_bytes(player, since=back + RENEWAL + 2.0)) > 0
            player.leave()


async def test_a_store_down_for_three_leases_lets_a_new_stream_be_announced_all_the_same(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with cluster(1, config(), ts_engine()) as c, trio.open_nursery() as nursery:
        c.leases.down = True
        player = ts_player(c.instances[0])
        nursery.start_soon(player.run)
        await trio.sleep(29.0)
        assert c.orchestrator.kinds() == []
        await trio.sleep(2 + RENEWAL)
        assert c.orchestrator.kinds() == ["stream_started"]
        player.leave()
