"""loop_lag: how late the event loop runs while one channel reloads a huge upstream playlist.

One Trio run, no sockets: a channel's fetch loop (:class:`trioproxy.channels.fetcher.Fetcher`)
reloads a live media playlist of N segments (served by ``httpx.MockTransport``, 1 s target
duration, so about one reload a second) while a ticker task wakes every 10 ms and records how
late it woke. The worst lateness is what every other channel, and ``/healthz``, would have waited.

    python -m benchmarks.loop_lag [--segments 10000,100000] [--seconds 6]

Prints one line per size: reloads done, the ticker's worst and p99 lateness in ms. A figure to
read, never a test.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import httpx
import trio

from trioproxy.channels.feed import Feed
from trioproxy.channels.fetcher import Fetcher
from trioproxy.hls.window import SegmentWindow
from trioproxy.testing.harness import default_config
from trioproxy.upstream.engine import EngineClient
from trioproxy.upstream.resources import ResourceCache

TICK = 0.010
PLAYLIST = "http://origin.test/live.m3u8"


def playlist_text(segments: int) -> bytes:
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:1", "#EXT-X-MEDIA-SEQUENCE:0"]
    for n in range(segments):
        lines += ["#EXTINF:1.000,", f"seg/{n}.ts"]
    return ("\n".join(lines) + "\n").encode()


async def measure(segments: int, seconds: float) -> tuple[int, float, float]:
    """Reloads done, worst and p99 lateness (ms) of a 10 ms ticker over ``seconds``."""
    text = playlist_text(segments)
    reloads = 0

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal reloads
        if request.url.path.endswith(".m3u8"):
            reloads += 1
            return httpx.Response(200, content=text)
        return httpx.Response(200, content=b"\x47" * 188)

    lateness: list[float] = []

    async def tick() -> None:
        due = time.perf_counter() + TICK
        try:
            while True:
                await trio.sleep(max(0.0, due - time.perf_counter()))
                now = time.perf_counter()
                lateness.append(now - due)
                due = max(due + TICK, now)
        finally:  # cancelled at the end: a tick still waiting counts as late as it is by now
            lateness.append(max(0.0, time.perf_counter() - due))

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        config = default_config()
        feed = Feed(SegmentWindow(config.hls_max_segments), ResourceCache(64))
        fetcher = Fetcher("big", config, EngineClient(http), feed)
        with trio.move_on_after(seconds):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(tick)
                nursery.start_soon(fetcher.run, PLAYLIST)
    ordered = sorted(lateness)
    p99 = ordered[int(0.99 * (len(ordered) - 1))] if ordered else 0.0
    return reloads, 1000 * max(ordered, default=0.0), 1000 * p99


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loop_lag", description=__doc__)
    parser.add_argument("--segments", default="10000,100000")
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args(argv)
    for size in (int(s) for s in args.segments.split(",")):
        reloads, worst, p99 = trio.run(measure, size, args.seconds)
        print(
            f"{size:>8} segments: {reloads:3d} reloads in {args.seconds:g} s, "
            f"loop lateness worst {worst:7.1f} ms, p99 {p99:7.1f} ms",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
