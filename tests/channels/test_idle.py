"""Players come and go: a channel stops only once nobody watched it for the grace period."""

from __future__ import annotations

import trio
import trio.testing

from trioproxy.testing.engine import SimulatedEngine
from trioproxy.testing.harness import CONTENT_A, default_config, harness, small_media

# default_config(): HLS_CLIENT_IDLE_TIMEOUT 10 s, PROXY_GRACE_PERIOD 5 s.


async def test_channel_stops_after_idle_timeout_plus_grace(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        response = await h.open_playlist(CONTENT_A)
        assert response.status_code == 200
        channel = h.registry.get(CONTENT_A)
        assert channel is not None
        last_request = trio.current_time()
        await channel.closed.wait()
        # The player counts as gone 10 s after its last request; the channel lingers 5 s more.
        assert channel.end_reason == "no players"
        assert h.sim.stops
        assert h.sim.open_sessions == []
        assert h.orchestrator.kinds() == ["stream_started", "stream_ended"]
        assert h.orchestrator.events[1].at == last_request + 15.0
        assert h.registry.get(CONTENT_A) is None


async def test_player_returning_within_grace_keeps_the_channel(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        first = await h.client.get("/ace/getstream", params={"id": CONTENT_A})
        url = first.headers["location"]
        assert (await h.client.get(url)).status_code == 200
        channel = h.registry.get(CONTENT_A)
        await trio.sleep(13.0)  # gone as a player (10 s), inside the grace period (5 s)
        assert channel is not None
        assert channel.clients.count(trio.current_time()) == 0
        assert (await h.client.get(url)).status_code == 200
        await trio.sleep(13.0)
        assert h.registry.get(CONTENT_A) is channel
        assert not channel.stopping
        assert len(h.sim.sessions) == 1


async def test_players_are_told_apart_by_token_not_address(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        # Two players behind one NAT (same address, same user agent), each with its own URL.
        for _ in range(2):
            assert (await h.open_playlist(CONTENT_A)).status_code == 200
        channel = h.registry.get(CONTENT_A)
        assert channel is not None
        assert channel.clients.count(trio.current_time()) == 2
        # A player without our token: its own session header tells it apart.
        plain = f"/ace/hls/{CONTENT_A}/index.m3u8"
        for session in ("one", "one", "two"):
            headers = {"X-Playback-Session-Id": session}
            assert (await h.client.get(plain, headers=headers)).status_code == 200
        assert channel.clients.count(trio.current_time()) == 4


async def test_a_player_waiting_for_a_slow_engine_keeps_the_channel(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The engine needs 25 s before its first segment: longer than idle timeout + grace (15 s).
    engine = SimulatedEngine(small_media(), durations=[2.0], prebuffer=25.0)
    config = default_config(hls_buffer_ready_timeout=40.0)
    async with harness(config, engine) as h:
        began = trio.current_time()
        response = await h.open_playlist(CONTENT_A)
        assert response.status_code == 200
        assert trio.current_time() - began >= 25.0
        assert len(h.sim.sessions) == 1


async def test_buffer_timeout_answers_503_with_retry_after(
    autojump_clock: trio.testing.MockClock,
) -> None:
    engine = SimulatedEngine(small_media(), durations=[2.0], prebuffer=60.0)
    config = default_config(hls_buffer_ready_timeout=12.0)
    async with harness(config, engine) as h:
        began = trio.current_time()
        response = await h.open_playlist(CONTENT_A)
        assert trio.current_time() - began == 12.0
        assert response.status_code == 503
        assert response.json()["error"] == "buffer_timeout"
        assert int(response.headers["retry-after"]) >= 1
        # The retry joins the same channel: still one engine session.
        response = await h.open_playlist(CONTENT_A)
        assert len(h.sim.sessions) == 1
