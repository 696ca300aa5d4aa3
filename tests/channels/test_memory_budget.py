"""The memory budget across channels (TRIOPROXY_MEMORY_BUDGET): a new channel gets room from what
the others hold beyond the windows they serve, one that will not fit even so is refused up front,
a live channel under pressure drops what it no longer serves, and finished content too big for
it is refused as soon as its size can be told."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

from tests.origin import Origin, origin_config
from trioproxy.channels.status import channel_status, registry_status
from trioproxy.testing.engine import SimulatedEngine
from trioproxy.testing.harness import CONTENT_A, CONTENT_B, default_config, harness, small_media

MIB = 1024 * 1024
SEGMENT = 100_000


async def test_a_live_channel_under_pressure_keeps_its_window_and_a_new_one_is_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    engine = SimulatedEngine(small_media(64, SEGMENT), durations=[2.0], backlog=6.0)
    # It serves 9 of the 10 segments it can hold: one segment beyond would not make room for
    # another channel's reserve (a quarter of the budget).
    config = default_config(memory_budget=MIB, hls_window_size=9)
    async with harness(config, engine=engine) as h:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(h.watch, CONTENT_A, 60.0)
            await trio.sleep(40.0)
            channel = h.channel(CONTENT_A)
            memory = registry_status(h.registry)["limits"]["memory"]
            assert memory["budget_bytes"] == MIB
            assert memory["charged_bytes"] <= MIB
            assert len(channel.window) == MIB // SEGMENT  # 10: not the 20 HLS_MAX_SEGMENTS
            assert channel_status(channel)["buffer"]["dropped_for_memory"] > 0
            assert channel.window.gaps == 0  # nothing players are served was lost

            refused = await h.client.get("/ace/getstream", params={"id": CONTENT_B})
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "10"
            assert refused.json()["error"] == "over_capacity"
            assert "TRIOPROXY_MEMORY_BUDGET=1.0 MiB" in refused.json()["message"]
            assert h.registry.get(CONTENT_B) is None
            assert len(channel.window) == 10  # nothing was dropped for a refusal
            status = (await h.client.get("/proxy/status")).json()
            assert status["limits"]["memory"]["refused"] == {"channels": 1}
        await trio.sleep(20.0)  # no players: channel A stops and gives its bytes back
        assert h.registry.get(CONTENT_A) is None
        memory = registry_status(h.registry)["limits"]["memory"]
        assert (memory["charged_bytes"], memory["held_bytes"], memory["accounts"]) == (0, 0, 0)
        assert (await h.open_playlist(CONTENT_B)).status_code == 200


LARGE = 200_000
KEYS = [c * 40 for c in "abcde"]


async def test_a_new_channel_gets_room_from_what_others_hold_beyond_their_served_windows(
    autojump_clock: trio.testing.MockClock,
) -> None:
    engine = SimulatedEngine(small_media(64, LARGE), durations=[2.0], backlog=6.0)
    # Three channels fill their windows to HLS_MAX_SEGMENTS (10 × 200 kB); a new channel's
    # reserve is its served window and the next segment (7 × 200 kB): 1.4 MB, and 0.2 MB is free.
    config = default_config(
        memory_budget=3 * 10 * LARGE + LARGE,
        hls_max_segments=10,
        hls_window_size=6,
        max_streams_per_engine=5,
    )
    async with harness(config, engine=engine) as h, trio.open_nursery() as nursery:
        first = KEYS[:3]
        for key in first:
            await h.wait_channel(key)  # one at a time: an engine opens 2 sessions at once
            nursery.start_soon(h.watch, key, 90.0)
        await trio.sleep(40.0)
        assert [len(h.channel(key).window) for key in first] == [10, 10, 10]
        memory = registry_status(h.registry)["limits"]["memory"]
        assert memory["free_bytes"] == LARGE < memory["new_channel_reserve_bytes"]

        statuses = await h.watch(KEYS[3], 60.0)  # made room for: it plays
        assert len(statuses) >= 5  # 20 s of reloads every 2 s
        assert set(statuses) == {200}
        fourth = h.channel(KEYS[3])
        assert len(fourth.window) == 7
        assert fourth.window.gaps == 0
        memory = registry_status(h.registry)["limits"]["memory"]
        assert memory["reclaimed_segments"] == 6  # 1.2 MB, the oldest first: 2 of each
        for key in first:  # the others still serve their windows, and lost nothing they serve
            window = h.channel(key).window
            assert len(window) == 8
            assert window.gaps == 0
            assert len(window.latest(6)) == 6

        # What is left beyond the served windows (3 × 1 segment) would not make room for one
        # more: refused at once, with nothing dropped for it.
        refused = await h.client.get("/ace/getstream", params={"id": KEYS[4]})
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "10"
        assert refused.json()["error"] == "over_capacity"
        assert h.registry.get(KEYS[4]) is None
        assert [len(h.channel(key).window) for key in first] == [8, 8, 8]
        memory = registry_status(h.registry)["limits"]["memory"]
        assert memory["reclaimed_segments"] == 6
        assert memory["charged_bytes"] <= memory["budget_bytes"]


def finished(segments: int, *, byteranges: bool = False) -> str:
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:4", "#EXT-X-PLAYLIST-TYPE:VOD"]
    for n in range(segments):
        lines.append("#EXTINF:4.000,")
        if byteranges:
            lines.append("#EXT-X-BYTERANGE:3000@0")
        lines.append(f"/vod/{n}.ts")
    return "\n".join([*lines, "#EXT-X-ENDLIST", ""])


async def test_finished_content_too_big_is_refused_once_its_first_segments_are_in(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    origin = Origin(playlists={"/live/index.m3u8": finished(1000)})  # 1000 × 3000 bytes
    async with harness(origin_config(memory_budget=MIB), origin=origin) as h:
        response = await h.open_playlist(CONTENT_A)
        assert response.status_code == 503
        assert response.json()["error"] == "over_capacity"
        assert "does not fit in TRIOPROXY_MEMORY_BUDGET" in response.json()["message"]
        assert "retry-after" in response.headers
        segments = [r for r in origin.requests if r.startswith("/vod/")]
        assert len(segments) <= 10  # refused early, not after a megabyte of downloads
        again = await h.client.get("/ace/getstream", params={"id": CONTENT_A})
        assert again.status_code == 503  # in its failure backoff, still as over capacity
    # A refusal, not a crash: no "internal error", no traceback.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_finished_content_with_byte_ranges_is_refused_before_any_download(
    autojump_clock: trio.testing.MockClock,
) -> None:
    origin = Origin(playlists={"/live/index.m3u8": finished(1000, byteranges=True)})
    async with harness(origin_config(memory_budget=MIB), origin=origin) as h:
        response = await h.open_playlist(CONTENT_A)
        assert response.status_code == 503
        assert "finished content of about 2.9 MiB" in response.json()["message"]
        assert not [r for r in origin.requests if r.startswith("/vod/")]


async def test_finished_content_that_fits_is_served_whole(
    autojump_clock: trio.testing.MockClock,
) -> None:
    origin = Origin(playlists={"/live/index.m3u8": finished(200)})  # 600 kB of 1 MiB
    async with harness(origin_config(memory_budget=MIB), origin=origin) as h:
        response = await h.open_playlist(CONTENT_A)
        assert response.status_code == 200
        channel = h.channel(CONTENT_A)
        await channel.feed.ended.wait()
        assert len(channel.window) == 200
        assert registry_status(h.registry)["limits"]["memory"]["held_bytes"] == 200 * 3000
