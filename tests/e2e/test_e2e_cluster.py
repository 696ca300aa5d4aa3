"""Instances of ``trioproxy serve`` as one cluster, end to end with real programs: redis-server,
HAProxy with ``deploy/haproxy.cfg``, the simulated engine (MPEG-TS only, 2 s segments) and the
fake orchestrator (v1 and v2) on 127.0.0.1, players on real sockets.

- Thirty HLS and MPEG-TS players on six channels, through HAProxy and straight at the
  instances: one engine session and one ``stream_started`` per content in the whole cluster.
- ``kill -9`` of a channel's owner: the players on the other instances play on (the freeze is
  measured), the dead owner's engine session is stopped, its ``stream_ended`` comes before the
  new owner's ``stream_started``, and one engine session remains.
- Redis restarted empty under running channels: none ends, players play on, and one engine
  session per content within two leases; a fourth instance joining later relays the running
  channels without a new engine session.

Leases last 3 s (``TRIOPROXY_LEASE_SECONDS``). Real clock: waits poll with a deadline, and each
test has a deadline of its own.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from functools import partial

import httpx
import pytest
import trio

from trioproxy.testing.orchestrator import V1Wire, V2Wire, Wire
from trioproxy.testing.players import HttpxGetter, Player, PlayerLog
from trioproxy.testing.ts_reader import TsReader

from ..tools import require_tools
from .cluster_rig import LEASE, Rig, channel_id, cluster_rig, content_events

pytestmark = require_tools("redis-server", "haproxy")

SEGMENT = 2.0
"""The engine's target duration."""
FREEZE_BOUND = LEASE + 2 * SEGMENT + 3.0
"""The longest a relay's players may go without media when its owner dies: the lease lapses,
a session opens (at once here), a segment's worth is cut; plus slack for a busy machine."""


class Players:
    """Players of one test, each in its own task; a connection that fails is noted, not raised."""

    def __init__(self, nursery: trio.Nursery, client: httpx.AsyncClient) -> None:
        self.nursery = nursery
        self.client = client
        self.readers: list[tuple[str, TsReader]] = []
        self.hls: list[tuple[str, PlayerLog]] = []
        self.failed: list[str] = []

    def ts(self, base: str, key: str) -> TsReader:
        reader = TsReader(f"{base}/ace/getstream?id={key}&format=ts")
        self.readers.append((key, reader))
        self.nursery.start_soon(self._read, reader)
        return reader

    async def _read(self, reader: TsReader) -> None:
        try:
            await reader.run(self.client)
        except httpx.HTTPError as error:
            self.failed.append(f"{reader.url}: {error!r}")

    def hls_player(self, base: str, key: str) -> PlayerLog:
        log = PlayerLog()
        self.hls.append((key, log))
        self.nursery.start_soon(Player(HttpxGetter(self.client, base), log).watch, key)
        return log


async def eventually(check: Callable[[], bool], what: str, seconds: float) -> None:
    with trio.move_on_after(seconds):
        while True:
            if check():
                return
            await trio.sleep(0.1)
    raise AssertionError(f"not within {seconds:g} s: {what}")


def has_media(reader: TsReader) -> bool:
    return reader.media_packets > 0


def one_session_each(rig: Rig, keys: list[str]) -> bool:
    return rig.open_per_content() == dict.fromkeys(keys, 1)


@pytest.mark.parametrize("wire", [V1Wire, V2Wire], ids=["v1", "v2"])
async def test_thirty_players_on_six_channels_open_one_engine_session_each(
    wire: Callable[[], Wire],
) -> None:
    keys = [channel_id(n) for n in range(6)]
    with trio.fail_after(120):
        async with (
            cluster_rig(wire=wire(), haproxy=True) as rig,
            httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=60.0)) as client,
        ):
            async with trio.open_nursery() as nursery:
                assert rig.haproxy is not None
                players = Players(nursery, client)
                # Thirty players at once: every channel asked of several instances at the same time.
                for n, (key, j) in enumerate(itertools.product(keys, range(5))):
                    direct = n % 2 == 1
                    base = rig.instances[n % 3].url if direct else rig.haproxy.url
                    if (n + j) % 2:
                        players.ts(base, key)
                    else:
                        players.hls_player(base, key)
                await trio.sleep(20.0)
                nursery.cancel_scope.cancel()
            # One engine session per content in the cluster, never a second one.
            assert rig.sessions_per_content() == dict.fromkeys(keys, 1)
            assert rig.open_per_content() == dict.fromkeys(keys, 1)
            # One stream per content in the orchestrator's books.
            for key in keys:
                assert content_events(rig.orchestrator, key) == ["stream_started"], key
            assert len(rig.orchestrator.running) == 6
            # Every player played.
            assert players.failed == []
            for key, reader in players.readers:
                assert reader.status == 200, (key, reader.url)
                assert reader.media_packets > 1000, (key, reader.url)
                first = reader.media_times()[0]
                assert reader.longest_media_gap(start=first) < 2 * SEGMENT + 2.0, reader.url
            for key, log in players.hls:
                assert log.errors == [], (key, log.errors[:3])
                assert log.segments >= 4, (key, log.segments)


async def test_players_on_other_instances_play_on_when_the_owner_is_killed() -> None:
    key = channel_id(100)
    with trio.fail_after(120):
        async with (
            cluster_rig() as rig,
            httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=60.0)) as client,
        ):
            async with trio.open_nursery() as nursery:
                owner, others = rig.instances[0], rig.instances[1:]
                players = Players(nursery, client)
                first_player = players.ts(owner.url, key)
                await eventually(lambda: first_player.media_packets > 0, "the owner plays", 20)
                watchers = [players.ts(other.url, key) for other in others]
                hls = players.hls_player(others[1].url, key)
                await eventually(
                    lambda: all(w.media_packets > 0 for w in watchers) and hls.segments > 0,
                    "the relays play",
                    20,
                )
                await trio.sleep(4.0)
                (first,) = rig.engine.sessions
                segments_before = hls.segments

                owner.kill()
                killed_at = trio.current_time()
                await trio.sleep(LEASE + 12.0)
                nursery.cancel_scope.cancel()

            freezes = [w.longest_media_gap(start=killed_at - 1.0) for w in watchers]
            print(f"freeze at the relays' players after kill -9 of the owner: {freezes}")
            for watcher, freeze in zip(watchers, freezes, strict=True):
                assert watcher.media_after(killed_at + LEASE + 2 * SEGMENT) > 1000, watcher.url
                assert freeze <= FREEZE_BOUND, (watcher.url, freeze)
            assert hls.segments >= segments_before + 3
            # The dead owner's engine session was stopped by the new owner; one session runs.
            assert rig.engine.sessions[first].stopped
            assert rig.sessions_per_content() == {key: 2}
            assert rig.open_per_content() == {key: 1}
            # The orchestrator heard the dead owner's stream end before the new one started.
            assert content_events(rig.orchestrator, key) == [
                "stream_started",
                "stream_ended",
                "stream_started",
            ]


async def test_a_redis_restart_ends_no_channel_and_a_new_instance_disturbs_none() -> None:
    keys = [channel_id(200 + n) for n in range(3)]
    with trio.fail_after(150):
        async with (
            cluster_rig() as rig,
            httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=60.0)) as client,
        ):
            async with trio.open_nursery() as nursery:
                players = Players(nursery, client)
                # Channel n is owned by instance n and relayed by the next one.
                for n, key in enumerate(keys):
                    opener = players.ts(rig.instances[n].url, key)
                    await eventually(partial(has_media, opener), "a channel opens", 20)
                watchers = [
                    players.ts(rig.instances[(n + 1) % 3].url, k) for n, k in enumerate(keys)
                ]
                await eventually(
                    lambda: all(w.media_packets > 0 for w in watchers), "the relays play", 20
                )
                await trio.sleep(3.0)
                assert rig.sessions_per_content() == dict.fromkeys(keys, 1)

                await rig.redis.restart()
                restarted_at = trio.current_time()
                # A duplicate session, had one opened, is gone within two leases: owners re-claim
                # at their next renewal (every lease/3), a loser gives its session up and relays.
                await trio.sleep(2 * LEASE)
                assert one_session_each(rig, keys), rig.engine.open_sessions
                await trio.sleep(2 * LEASE)
                duplicates = sum(rig.sessions_per_content().values()) - len(keys)
                print(f"engine sessions opened across the Redis restart: {duplicates}")
                assert one_session_each(rig, keys)

                # A fourth instance joins and relays every channel: no new engine session.
                sessions = len(rig.engine.sessions)
                newcomer = await rig.add_instance()
                late = [players.ts(newcomer.url, key) for key in keys]
                await eventually(
                    lambda: all(r.media_packets > 0 for r in late), "newcomer plays", 20
                )
                await trio.sleep(6.0)
                ended_at = trio.current_time()
                nursery.cancel_scope.cancel()

            assert players.failed == []
            assert len(rig.engine.sessions) == sessions
            assert one_session_each(rig, keys)
            # No channel ended: no stream_ended, every player played throughout.
            assert "stream_ended" not in rig.orchestrator.kinds(), rig.orchestrator.kinds()
            for key, reader in players.readers:
                assert not reader.ended_by_server, reader.url
                start = max(restarted_at - 1.0, reader.media_times()[0])
                gap = reader.longest_media_gap(start=start)
                assert gap < 2 * SEGMENT + 2.0, (key, reader.url, gap)
                assert reader.media_after(ended_at - 2 * SEGMENT) > 0, reader.url
