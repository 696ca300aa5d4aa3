"""What a channel reserves is given back on every path: a refused start keeps no memory reserve,
engine slot or address count, and a stopped channel frees its engine slot and its window when its
life ends, while only its event sender (waiting on a down orchestrator) lives on."""

from __future__ import annotations

import ipaddress

import trio
import trio.testing

from trioproxy.channels.join import Content, Visitor, join
from trioproxy.testing.harness import (
    CONTENT_A,
    CONTENT_B,
    default_config,
    harness,
)
from trioproxy.testing.orchestrator import FakeOrchestrator

MIB = 1024 * 1024
ENGINE_ROW = {
    "container_id": "box-1",
    "host": "engine.test",
    "port": 6878,
    "forwarded": False,
    "health_status": "healthy",
}


def _ids(count: int) -> list[str]:
    return [f"{n:040x}" for n in range(1, count + 1)]


async def test_refusals_while_no_engine_is_known_keep_no_memory(
    autojump_clock: trio.testing.MockClock,
) -> None:
    orchestrator = FakeOrchestrator(engines=[])
    config = default_config(engines=(), memory_budget=128 * MIB, engine_refresh_interval=10.0)
    async with harness(config, orchestrator=orchestrator) as h:
        await trio.testing.wait_all_tasks_blocked()
        before = (await h.client.get("/proxy/status")).json()["limits"]["memory"]
        # Players retry, as hls.js and IPTV apps do, while the orchestrator lists no engine.
        for key in _ids(60):
            refused = await h.client.get("/ace/getstream", params={"id": key})
            assert refused.status_code == 503
            assert "no engine is known" in refused.json()["message"]
        after = (await h.client.get("/proxy/status")).json()["limits"]["memory"]
        assert after == {**before, "refused": {}}
        assert (after["charged_bytes"], after["accounts"]) == (0, 0)
        # The engine is listed again: the next channel plays.
        orchestrator.engines = [ENGINE_ROW]
        await trio.sleep(10.0)
        assert (await h.open_playlist(CONTENT_A)).status_code == 200


async def test_a_refused_player_keeps_no_address_count(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = default_config(
        max_streams_per_engine=1,
        max_channels_per_address=1,
        trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"),),
    )
    async with harness(config) as h:
        await h.wait_channel(CONTENT_A)
        home = Visitor("198.51.100.1", "t:home-player")
        # The engine is full: the refusal leaves nothing counted for the address ...
        for _ in range(3):
            refused = await h.client.get(
                "/ace/getstream",
                params={"id": CONTENT_B},
                headers={"X-Forwarded-For": home.address},
            )
            assert refused.status_code == 503
        assert h.registry.addresses.started_by(home.address) == []
        assert h.registry.directory.load(h.channel(CONTENT_A).engine) == 1
        # ... so once the engine has room, the address may start its one channel.
        h.registry.stop_channel(CONTENT_A)
        await trio.testing.wait_all_tasks_blocked()
        channel = join(h.registry, Content("content_id", CONTENT_B), home)
        assert channel is not None
        assert h.registry.addresses.started_by(home.address) == [channel]


async def test_a_stopped_channel_frees_its_engine_slot_while_the_orchestrator_is_down(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness(default_config(max_streams_per_engine=1)) as h:
        h.orchestrator_transport.refusing = True
        stopped = await h.wait_channel(CONTENT_A)
        held = stopped.window.total_bytes
        assert held > 0
        charged = (await h.client.get("/proxy/status")).json()["limits"]["memory"]
        assert charged["held_bytes"] == held
        t0 = trio.current_time()
        assert (await h.client.delete(f"/proxy/channels/{CONTENT_A}")).status_code == 202
        await trio.testing.wait_all_tasks_blocked()
        # Its event sender retries stream_started, then stream_ended, for up to
        # TRIOPROXY_EVENT_DRAIN_TIMEOUT: the channel is closing, not closed ...
        assert stopped in h.registry.closing
        assert not stopped.closed.is_set()
        assert stopped.events_pending > 0
        # ... yet its engine slot, its window and its bytes are free already.
        assert h.registry.directory.load(stopped.engine) == 0
        memory = (await h.client.get("/proxy/status")).json()["limits"]["memory"]
        assert (memory["held_bytes"], memory["accounts"]) == (0, 0)
        assert (len(stopped.window), stopped.window.total_bytes) == (0, 0)
        assert (await h.open_playlist(CONTENT_B)).status_code == 200
        assert trio.current_time() - t0 < 5.0  # at once, not after the drain timeout
        assert len(h.sim.open_sessions) == 1  # A's engine session was stopped, B's is open
