"""Misbehaving players: one reloading 50 times a second, a swarm of requests for channels that do
not exist. Neither costs another channel anything, nor the engine more work."""

from __future__ import annotations

import trio
import trio.testing

from trioproxy.testing.harness import CONTENT_A, CONTENT_B, harness


async def test_a_player_reloading_50_times_a_second(autojump_clock: trio.testing.MockClock) -> None:
    async with harness() as h:
        url_a = await h.start(CONTENT_A)
        url_b = await h.start(CONTENT_B)
        assert (await h.client.get(url_a)).status_code == 200
        assert (await h.client.get(url_b)).status_code == 200
        started = trio.current_time()
        before = h.engine.requests.copy()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(h.play, url_a, started + 60.0, 0.02)  # 3000 reloads
            statuses_b = await h.play(url_b, until=started + 60.0)
        assert set(statuses_b) == {200}
        # The engine polls at its own pace whatever the players do: one playlist reload per
        # target duration per channel (2 s), one download per new segment.
        playlists = h.engine.requests["playlist"] - before["playlist"]
        segments = h.engine.requests["segment"] - before["segment"]
        assert playlists == 2 * 60 // 2
        assert segments == 2 * 60 // 2
        assert h.engine.requests["open"] == 2  # no reload ever opened another session
        assert h.channel(CONTENT_A).clients.count(trio.current_time()) == 1


async def test_requests_for_unknown_segments_touch_no_upstream(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        url = await h.start(CONTENT_A)
        assert (await h.client.get(url)).status_code == 200
        before = h.engine.requests.copy()
        for n in range(3000):
            response = await h.client.get(f"/ace/hls/{n:040x}/00000000/{n}.ts")
            assert response.status_code == 404
        assert h.engine.requests == before
        assert trio.current_time() < 1.0  # answered from memory, nothing waited
        assert (await h.client.get(url)).status_code == 200
