"""Large playlists are parsed in worker threads: the wait for one is inside the reload's deadline
(a hung parse fails like a hung read), and one fetch loop's slow parse leaves the others theirs.

Threads do their work on the virtual clock here: :class:`VirtualThreads` stands for
``trio.to_thread.run_sync`` and, like it, takes the limiter before the work starts, gives it
back only once the work ended, and abandons the work when its caller is cancelled.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import outcome
import pytest
import trio
import trio.testing

from trioproxy.channels.feed import Feed
from trioproxy.channels.fetcher import Fetcher
from trioproxy.config import Config
from trioproxy.errors import EngineError
from trioproxy.hls.window import SegmentWindow
from trioproxy.testing.harness import default_config
from trioproxy.upstream.engine import EngineClient
from trioproxy.upstream.resources import ResourceCache

T = TypeVar("T")
HANG = 3600.0
SEGMENT = b"\x47" + bytes(187)


class VirtualThreads:
    """``trio.to_thread.run_sync`` whose work takes ``cost(task name)`` virtual seconds."""

    def __init__(self, nursery: trio.Nursery, cost: Callable[[str], float]) -> None:
        self.nursery = nursery
        self.cost = cost
        self.running: Counter[str] = Counter()
        self.most: Counter[str] = Counter()
        """The most threads each task had running at once."""

    async def run_sync(
        self, fn: Callable[[], T], *, abandon_on_cancel: bool = False, limiter: Any = None
    ) -> T:
        assert abandon_on_cancel
        assert limiter is not None
        name = trio.lowlevel.current_task().name
        token = object()
        await limiter.acquire_on_behalf_of(token)
        finished = trio.Event()
        result: list[outcome.Outcome[T]] = []

        async def work() -> None:
            self.running[name] += 1
            self.most[name] = max(self.most[name], self.running[name])
            try:
                await trio.sleep(self.cost(name))
                result.append(outcome.capture(fn))
            finally:
                self.running[name] -= 1
                limiter.release_on_behalf_of(token)
                finished.set()

        self.nursery.start_soon(work)
        await finished.wait()
        return result[0].unwrap()


def live_playlist(request: httpx.Request) -> httpx.Response:
    """A live stream of 2 s segments since 0 s: the five newest listed."""
    if not request.url.path.endswith(".m3u8"):
        return httpx.Response(200, content=SEGMENT)
    last = int(trio.current_time() // 2)
    first = max(0, last - 4)
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:2", f"#EXT-X-MEDIA-SEQUENCE:{first}"]
    for n in range(first, last + 1):
        lines += ["#EXTINF:2.000,", f"seg/{n}.ts"]
    return httpx.Response(200, content="\n".join(lines) + "\n")


def threaded_config() -> Config:
    """Every playlist parsed in a thread; no failover: 30 s of failing reloads end a session."""
    return default_config(
        playlist_thread_bytes=0, failover_playlist_targets=0.0, upstream_timeout=30.0
    )


def fetcher(http: httpx.AsyncClient, config: Config) -> tuple[Fetcher, Feed]:
    feed = Feed(SegmentWindow(config.hls_max_segments), ResourceCache(8))
    return Fetcher("test", config, EngineClient(http), feed), feed


async def test_a_parse_that_hangs_fails_its_reloads_at_the_playlist_deadline(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch, no_jitter: None
) -> None:
    def cost(name: str) -> float:
        return HANG if trio.current_time() >= 10.0 else 0.0

    config = threaded_config()
    failed: list[tuple[float, str]] = []
    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(live_playlist)) as http,
        trio.open_nursery() as threads_nursery,
    ):
        threads = VirtualThreads(threads_nursery, cost)
        monkeypatch.setattr(trio.to_thread, "run_sync", threads.run_sync)
        loop, feed = fetcher(http, config)
        with trio.move_on_after(100.0):
            try:
                await loop.run("http://origin.test/live.m3u8")
            except* EngineError as group:
                failed += [(trio.current_time(), error.message) for error in group.exceptions]
        threads_nursery.cancel_scope.cancel()
    assert feed.ready.is_set()
    # The reload of 10 s hangs in its parse: it fails at 20 s (10 s, a read's bound), and the
    # retries wait for that parse (one per fetch loop), each within its own bound, until the
    # playlist deadline (30 s after the first failing reload) ends the session.
    assert failed == [(40.0, "engine playlist failing: timed out")]
    assert max(threads.most.values()) == 1


async def test_a_hung_parse_of_one_fetch_loop_leaves_the_others_parsing(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    def cost(name: str) -> float:
        return HANG if name == "stuck" else 0.1

    config = threaded_config()
    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(live_playlist)) as http,
        trio.open_nursery() as threads_nursery,
    ):
        threads = VirtualThreads(threads_nursery, cost)
        monkeypatch.setattr(trio.to_thread, "run_sync", threads.run_sync)
        stuck, _ = fetcher(http, config)
        others = [fetcher(http, config) for _ in range(5)]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stuck.run, "http://origin.test/live.m3u8", name="stuck")
            await trio.sleep(1.0)
            for n, (other, _) in enumerate(others):
                nursery.start_soon(other.run, "http://origin.test/live.m3u8", name=f"other {n}")
            await trio.sleep(19.0)
            # Every other loop parsed each reload in its turn and has the newest segment (9).
            for _, feed in others:
                assert feed.ready.is_set()
                assert [s.upstream_sequence for s in feed.window][-1] == 9
            nursery.cancel_scope.cancel()
        threads_nursery.cancel_scope.cancel()
    # The stuck loop's reloads failed and were retried, but it never held two threads.
    assert threads.most["stuck"] == 1
