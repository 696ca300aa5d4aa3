"""The stream watcher matches the orchestrator's streams by the key that orchestrator uses: our
stream id on v1, the content id on v2. A playing channel is never stopped because the two spell
ids differently; one the orchestrator ended is stopped at the next read."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import httpx
import pytest
import trio
import trio.testing

from trioproxy.channels.watcher import StreamWatcher
from trioproxy.errors import ProxyError
from trioproxy.upstream.orchestrator import Orchestrator

if TYPE_CHECKING:
    from trioproxy.channels.channel import Channel

CONTENT = "ab" * 20
STREAM_ID = f"{CONTENT}|psid-1"
INTERVAL = 15.0


@dataclass
class StubChannel:
    """What the watcher reads of a channel, and what it does to one."""

    name: str = CONTENT
    key: str = CONTENT
    stream_id: str | None = STREAM_ID
    stream_established: bool = True
    report_end: bool = True
    ended: list[tuple[float, str]] = field(default_factory=list)

    @property
    def stopping(self) -> bool:
        return bool(self.ended)

    def fail(self, error: ProxyError, reason: str) -> None:
        self.ended.append((trio.current_time(), reason))


@dataclass
class Surface:
    """One orchestrator's ``/streams`` and ``/looping-streams``: v1, v2 (8083), v2 (/api/v1)."""

    kind: str
    status: str = "started"
    listed: bool = True
    reads: list[float] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return "http://o.test:8000/api/v1" if self.kind == "v2-proxy" else "http://o.test:8083"

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api/v1")
        if path == "/engines":
            rows: Any = [{"host": "e", "port": 6878, "health_status": "healthy"}]
            return httpx.Response(200, json=rows if self.kind != "v2" else {"engines": rows})
        if path == "/looping-streams":
            if self.kind == "v1":
                return httpx.Response(200, json={"stream_ids": []})
            return httpx.Response(404, text="404 page not found\n")
        assert path == "/streams"
        self.reads.append(trio.current_time())
        if self.kind == "v1":  # by our stream id; ?status=started honoured
            running = self.listed and request.url.params["status"] == self.status
            return httpx.Response(200, json=[{"id": STREAM_ID, "key": CONTENT}] if running else [])
        # v2: by content id (spelled in upper case here), every status, ?status= ignored
        rows = [{"id": CONTENT.upper(), "key": CONTENT.upper(), "status": self.status}]
        rows = rows if self.listed else []
        return httpx.Response(200, json=rows if self.kind == "v2-proxy" else {"streams": rows})


def watcher_for(surface: Surface, channel: StubChannel) -> StreamWatcher:
    http = httpx.AsyncClient(transport=httpx.MockTransport(surface.handle))
    orchestrator = Orchestrator(http, surface.base_url, None)
    return StreamWatcher(orchestrator, INTERVAL, lambda: [cast("Channel", channel)])


@pytest.mark.parametrize("kind", ["v1", "v2", "v2-proxy"])
@pytest.mark.parametrize("ending", ["unlisted", "ended"])
async def test_a_playing_channel_is_kept_and_an_ended_one_stopped(
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    kind: str,
    ending: str,
) -> None:
    caplog.set_level(logging.INFO, logger="trioproxy")
    surface = Surface(kind, status="started" if kind == "v1" else "prebuf")
    channel = StubChannel()
    watcher = watcher_for(surface, channel)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watcher.run)
        await trio.sleep(61.0)  # reads at 0, 15, 30, 45, 60
        assert channel.ended == []
        if kind != "v1":
            surface.status = "allocating"  # still running on v2
            await trio.sleep(15.0)
            assert channel.ended == []
        if ending == "unlisted":
            surface.listed = False
        else:
            surface.status = "ended"  # v2 keeps listing it; v1's ?status=started drops it
        await trio.sleep(30.0)
        nursery.cancel_scope.cancel()
    stopped_at = 75.0 if kind == "v1" else 90.0
    assert channel.ended == [(stopped_at, "ended by the orchestrator")]
    assert channel.report_end is False  # no stream_ended for a stream the orchestrator ended
    assert watcher.stopped == 1
    assert surface.reads[:2] == [0.0, INTERVAL]
    watcher_lines = [r for r in caplog.records if r.name == "trioproxy.channels.watcher"]
    assert [r.levelno for r in watcher_lines] == [logging.INFO]  # the stop, nothing else


async def test_a_missing_loop_list_is_said_once(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trioproxy")
    surface = Surface("v2")
    watcher = watcher_for(surface, StubChannel(stream_established=False))
    with trio.move_on_after(10 * INTERVAL - 1):
        await watcher.run()
    assert watcher.reads == 10
    assert watcher.last_error is None
    trioproxy_lines = [r for r in caplog.records if r.name.startswith("trioproxy")]
    assert len(trioproxy_lines) == 2  # the API found at start-up; no loop list
    assert "API v2" in trioproxy_lines[0].getMessage()
    assert "no loop list" in trioproxy_lines[1].getMessage()
    assert all(r.levelno == logging.INFO for r in trioproxy_lines)


@pytest.mark.parametrize("answer", [[STREAM_ID], []], ids=["old stream listed", "none listed"])
@pytest.mark.parametrize("new_stream", [f"{CONTENT}|psid-2", None], ids=["switched", "switching"])
async def test_a_channel_that_fails_over_during_a_slow_read_is_left_alone(
    autojump_clock: trio.testing.MockClock, answer: list[str], new_stream: str | None
) -> None:
    flapping = StubChannel()
    other = StubChannel(name="other", key="cd" * 20, stream_id=f"{'cd' * 20}|psid-9")

    async def slow(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/engines":
            return httpx.Response(200, json=[])
        if request.url.path == "/looping-streams":
            return httpx.Response(200, json={"stream_ids": []})
        await trio.sleep(8.0)  # the answer is what the orchestrator knew when the read began
        return httpx.Response(200, json=[{"id": stream_id} for stream_id in answer])

    http = httpx.AsyncClient(transport=httpx.MockTransport(slow))
    orchestrator = Orchestrator(http, "http://o.test", None, "v1")
    channels = [cast("Channel", flapping), cast("Channel", other)]
    watcher = StreamWatcher(orchestrator, INTERVAL, lambda: channels)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watcher.poll)
        await trio.sleep(3.0)
        flapping.stream_id = new_stream  # a failover, mid-read
        await trio.sleep(10.0)
    assert flapping.ended == []
    assert other.ended == [(8.0, "ended by the orchestrator")]  # judged as before
