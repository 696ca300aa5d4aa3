"""Admission control: caps on channels, players per channel and session opens per engine.
Over a cap: 503 with Retry-After, nothing running is disturbed, and the caps show in status."""

from __future__ import annotations

import trio
import trio.testing

from trioproxy.testing.engine import SimulatedEngine
from trioproxy.testing.harness import CONTENT_A, CONTENT_B, default_config, harness, small_media

CONTENT_C = "c" * 40


async def test_channel_cap(autojump_clock: trio.testing.MockClock) -> None:
    config = default_config(max_channels=2, max_streams_per_engine=10)
    async with harness(config) as h:
        await h.start(CONTENT_A)
        await h.start(CONTENT_B)
        response = await h.client.get("/ace/getstream", params={"id": CONTENT_C})
        assert response.status_code == 503
        assert response.json()["error"] == "over_capacity"
        assert "TRIOPROXY_MAX_CHANNELS" in response.json()["message"]
        assert response.headers["retry-after"] == "10"
        assert h.engine.requests["open"] == 2
        status = (await h.client.get("/proxy/status")).json()
        assert status["limits"]["max_channels"] == 2
        assert status["limits"]["channels"] == 2
        assert status["limits"]["refused"] == {"channels": 1}
        # Once a channel is gone, there is room again.
        h.registry.stop_channel(CONTENT_A)
        await trio.sleep(1.0)
        assert (await h.client.get("/ace/getstream", params={"id": CONTENT_C})).status_code == 302


async def test_player_cap(autojump_clock: trio.testing.MockClock) -> None:
    async with harness(default_config(max_players_per_channel=2)) as h:
        urls = [await h.start(CONTENT_A) for _ in range(3)]
        assert (await h.client.get(urls[0])).status_code == 200
        assert (await h.client.get(urls[1])).status_code == 200
        third = await h.client.get(urls[2])
        assert third.status_code == 503
        assert "TRIOPROXY_MAX_PLAYERS_PER_CHANNEL" in third.json()["message"]
        assert third.headers["retry-after"] == "10"
        # Players already in keep being served, and reloading never counts them twice.
        for _ in range(5):
            await trio.sleep(2.0)
            assert (await h.client.get(urls[0])).status_code == 200
            assert (await h.client.get(urls[1])).status_code == 200
        assert h.channel().clients.count(trio.current_time()) == 2
        # Another channel is not affected by this one being full.
        other = await h.start(CONTENT_B)
        assert (await h.client.get(other)).status_code == 200


async def test_session_opens_per_engine_are_capped(autojump_clock: trio.testing.MockClock) -> None:
    engine = SimulatedEngine(small_media(), durations=[2.0], backlog=6.0, open_delay=5.0)
    config = default_config(max_opening_per_engine=1, max_streams_per_engine=10)
    async with harness(config, engine=engine) as h:
        await h.start(CONTENT_A)
        refused = await h.client.get("/ace/getstream", params={"id": CONTENT_B})
        assert refused.status_code == 503
        assert "TRIOPROXY_MAX_OPENING_PER_ENGINE" in refused.json()["message"]
        assert refused.headers["retry-after"] == "2"
        status = (await h.client.get("/proxy/status")).json()
        assert status["limits"]["max_opening_per_engine"] == 1
        assert status["limits"]["opening"] == {h.config.engines[0]: 1}
        # A burst of new channels never has more than one open in flight on the engine.
        for key in ("d" * 40, "e" * 40, "f" * 40):
            response = await h.client.get("/ace/getstream", params={"id": key})
            assert response.status_code == 503
        await trio.sleep(5.0)  # the first open is done
        assert (await h.client.get("/ace/getstream", params={"id": CONTENT_B})).status_code == 302
        await trio.testing.wait_all_tasks_blocked()  # the new channel's open reaches the engine
        assert h.engine.requests["open"] == 2


async def test_a_burst_of_unknown_channels_cannot_flood_the_engine(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Thousands of requests for channels nobody plays: bounded engine sessions, the rest 503."""
    engine = SimulatedEngine(small_media(), durations=[2.0], backlog=6.0, open_delay=2.0)
    config = default_config(max_opening_per_engine=2, max_streams_per_engine=5, max_channels=20)
    async with harness(config, engine=engine) as h:
        playing = await h.start(CONTENT_A)
        assert (await h.client.get(playing)).status_code == 200
        statuses: dict[int, int] = {}
        for n in range(2000):
            key = f"{n:040x}"
            response = await h.client.get(f"/ace/hls/{key}/index.m3u8")
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            segment = await h.client.get(f"/ace/hls/{key}/0badbeef/1.ts")
            assert segment.status_code == 404
        assert set(statuses) <= {200, 502, 503}
        assert statuses[503] >= 1990
        assert h.engine.requests["open"] <= 5  # the engine never carried more than its cap
        assert (await h.client.get(playing)).status_code == 200  # the real player is fine
