"""A huge upstream playlist is read off the event loop: other tasks keep running meanwhile.

On the real clock (a thread's work cannot pass on a virtual one); the bound is on what runs,
not on how fast.
"""

from __future__ import annotations

import httpx
import trio

from trioproxy.channels.feed import Feed
from trioproxy.channels.fetcher import Fetcher
from trioproxy.config import Config
from trioproxy.hls.window import SegmentWindow
from trioproxy.testing.harness import default_config
from trioproxy.upstream.engine import EngineClient
from trioproxy.upstream.resources import ResourceCache

SEGMENTS = 100_000


def huge_playlist() -> bytes:
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:2", "#EXT-X-MEDIA-SEQUENCE:0"]
    for n in range(SEGMENTS):
        lines += ["#EXTINF:2.000,", f"seg/{n}.ts"]
    return ("\n".join(lines) + "\n").encode()


async def test_other_tasks_run_while_a_huge_playlist_is_read() -> None:
    text = huge_playlist()
    assert len(text) > 20 * Config().playlist_thread_bytes
    ticks_before_first_segment: list[int] = []
    ticks = 0

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(".m3u8"):
            return httpx.Response(200, content=text)
        ticks_before_first_segment.append(ticks)
        return httpx.Response(200, content=b"\x47" * 188)

    async def tick() -> None:
        nonlocal ticks
        while True:
            await trio.sleep(0.001)
            ticks += 1

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        config = default_config(playlist_thread_bytes=Config().playlist_thread_bytes)
        feed = Feed(SegmentWindow(config.hls_max_segments), ResourceCache(8))
        fetcher = Fetcher("huge", config, EngineClient(http), feed)
        with trio.fail_after(120):  # generous: a few seconds of parsing on a slow machine
            async with trio.open_nursery() as nursery:
                nursery.start_soon(tick)
                nursery.start_soon(fetcher.run, "http://origin.test/live.m3u8")
                await feed.ready.wait()
                nursery.cancel_scope.cancel()
    # The first segments are fetched once the playlist was read; the ticker ran meanwhile.
    assert ticks_before_first_segment[0] >= 10
    assert [s.upstream_sequence for s in feed.window] == [SEGMENTS - 2, SEGMENTS - 1]
