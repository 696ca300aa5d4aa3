"""Failover on the virtual clock: two engines (A first, B second), each a fault engine.

Every trigger switches the channel to a new engine session at its exact deadline; the switch
limit ends the channel naming every attempt; the failed engine's breaker keeps requests off it;
the orchestrator sees ``stream_ended`` for the old session before ``stream_started`` for the new
one; players keep their URL, see one discontinuity, and sequence numbers never go back.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope

from trioproxy.channels.channel import Channel
from trioproxy.hls.mpegts import NULL_PACKET, PACKET_SIZE
from trioproxy.testing.engine import SimulatedEngine, demo_media
from trioproxy.testing.faults import FaultyEngine, request_kind
from trioproxy.testing.harness import (
    CONTENT_A,
    CONTENT_B,
    ENGINE_URL,
    Harness,
    RefusingTransport,
    asgi_transport,
    default_config,
    engine_sockets,
    harness,
    refused_error,
    small_media,
)
from trioproxy.testing.players import PlayerLog

from ..ts_client import TsClient

ENGINE_B = "http://engine-b.test:6878"
TS_QUERY = f"id={CONTENT_A}&format=ts"
# The harness's engine: 2 s segments (target duration 2), 6 s on air when a session opens.
PLAYLIST_DEADLINE = 3 * 2.0  # TRIOPROXY_FAILOVER_PLAYLIST_TARGETS (3) target durations
STALL_DEADLINE = 6 * 2.0  # TRIOPROXY_FAILOVER_STALL_TARGETS (6) target durations


@dataclass
class Recorded:
    """A fault engine that notes when each request (by kind) arrived."""

    faulty: FaultyEngine
    seen: list[tuple[float, str]] = field(default_factory=list)
    hang: set[str] = field(default_factory=set)
    """Kinds of request that never get an answer."""

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "http":
            kind = request_kind(scope["path"])
            self.seen.append((trio.current_time(), kind))
            if kind in self.hang:
                await trio.sleep_forever()
        await self.faulty(scope, receive, send)

    def times(self, kind: str) -> list[float]:
        return [at for at, what in self.seen if what == kind]

    def after(self, at: float) -> list[str]:
        return [what for when, what in self.seen if when > at]


class DyingTransport(httpx.AsyncBaseTransport):
    """Once ``dying`` is set, the next playlist reload loses its connection mid-answer and
    every request after it is refused: an engine's process going away under a request."""

    def __init__(self, inner: RefusingTransport) -> None:
        self.inner = inner
        self.dying = False
        self.lost_at: float | None = None
        self.refuse_segments = False
        self.segments_refused: list[float] = []
        self.cut_segment = False
        """The next segment download loses its connection, and every request after it is
        refused."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.cut_segment and request_kind(request.url.path) == "segment":
            self.cut_segment = False
            self.inner.refusing = True
            self.lost_at = trio.current_time()
            await trio.lowlevel.checkpoint()
            raise httpx.ReadError("connection reset by peer", request=request)
        if self.refuse_segments and request_kind(request.url.path) == "segment":
            self.segments_refused.append(trio.current_time())
            await trio.lowlevel.checkpoint()
            raise refused_error(request)
        if self.dying and not self.inner.refusing and request_kind(request.url.path) == "playlist":
            self.inner.refusing = True
            self.lost_at = trio.current_time()
            await trio.lowlevel.checkpoint()
            raise httpx.ReadError("connection reset by peer", request=request)
        return await self.inner.handle_async_request(request)


@dataclass
class Two:
    h: Harness
    a: Recorded
    b: Recorded
    a_transport: RefusingTransport
    b_transport: RefusingTransport
    a_dying: DyingTransport


def _engine(media: list[bytes]) -> Recorded:
    return Recorded(FaultyEngine(SimulatedEngine(media, durations=[2.0], backlog=6.0)))


@asynccontextmanager
async def two_engines(
    *, media: list[bytes] | None = None, watch: bool = False, **changes: Any
) -> AsyncIterator[Two]:
    """Engines A and B; ``watch``: each session also holds an idle connection to its engine
    (the engine watch, as the service runs it); without, the fetch loop alone finds a death."""
    media = small_media() if media is None else media
    a, b = _engine(media), _engine(media)
    a_transport = RefusingTransport(asgi_transport(a))
    b_transport = RefusingTransport(asgi_transport(b))
    # No idle stop: these channels play without players unless a test adds one.
    config = default_config(
        **{"engines": (ENGINE_URL, ENGINE_B), "proxy_grace_period": 3600.0, **changes}
    )
    a_dying = DyingTransport(a_transport)
    mounts: dict[str, httpx.AsyncBaseTransport] = {ENGINE_URL: a_dying, ENGINE_B: b_transport}
    sockets = engine_sockets({ENGINE_URL: a_transport, ENGINE_B: b_transport})
    async with harness(config, mounts=mounts, connect=sockets if watch else None) as h:
        yield Two(h, a, b, a_transport, b_transport, a_dying)


async def _switched(channel: Channel, switches: int = 1) -> float:
    """Wait until the channel's ``switches``-th switch; the time it happened."""
    with trio.fail_after(120):
        while channel.switches.total < switches:  # noqa: ASYNC110 (polls plain data)
            await trio.sleep(0.01)
    assert len(channel.sessions) >= switches + 1
    started = channel.sessions[switches].started_at
    return started


async def test_playlist_failing_switches_at_its_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with two_engines() as t:
        channel = await t.h.wait_channel()
        assert channel.engine.base_url == ENGINE_URL
        await trio.sleep(3.0)
        t.a.faulty.faults["*"] = "playlist_5xx"
        broke_at = trio.current_time()
        switched_at = await _switched(channel)
        first_failing = min(at for at in t.a.times("playlist") if at >= broke_at)
        assert switched_at == first_failing + PLAYLIST_DEADLINE
        assert channel.engine.base_url == ENGINE_B
        assert t.b.times("open") == [switched_at]  # at once: the first switch has no pause
        assert channel.sessions[0].reason is not None
        assert "playlist failing" in channel.sessions[0].reason


@pytest.mark.parametrize("watch", [False, True], ids=["reloads", "reloads+watch"])
async def test_playlist_hanging_switches_at_its_deadline(
    autojump_clock: trio.testing.MockClock, watch: bool
) -> None:
    async with two_engines(watch=watch) as t:
        channel = await t.h.wait_channel()
        await trio.sleep(3.0)
        t.a.faulty.faults["*"] = "playlist_hang"
        broke_at = trio.current_time()
        switched_at = await _switched(channel)
        first_hanging = min(at for at in t.a.times("playlist") if at >= broke_at)
        assert switched_at == first_hanging + PLAYLIST_DEADLINE
        assert t.b.times("open") == [switched_at]
        # A hung engine keeps the watch's one connection open: the deadline finds it.
        assert len(t.a_transport.accepted) == (1 if watch else 0)


async def test_refused_engine_switches_on_the_first_refused_reload(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with two_engines() as t:
        channel = await t.h.wait_channel()
        await trio.sleep(3.0)
        t.a_transport.refusing = True
        killed_at = trio.current_time()
        switched_at = await _switched(channel)
        refused = t.a_transport.refused_paths
        reloads = [at for at, path in refused if request_kind(path) == "playlist"]
        # The next reload, at its usual pace (one target duration at most), finds nobody, and
        # the switch follows at once.
        assert len(reloads) == 1
        assert reloads[0] - killed_at <= 2.0
        assert switched_at == reloads[0]
        assert t.b.times("open") == [switched_at]


async def test_a_killed_engine_is_heard_at_once_through_the_watch(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with two_engines(watch=True) as t:
        channel = await t.h.wait_channel()
        opened_at = channel.sessions[0].opened_at
        await trio.sleep(3.0)
        assert t.a_transport.accepted == [opened_at]  # one idle connection, held since the open
        t.a_transport.refusing = True  # the process dies: its connections close, its port refuses
        killed_at = trio.current_time()
        switched_at = await _switched(channel)
        assert switched_at == killed_at
        refused = [request_kind(path) for _, path in t.a_transport.refused_paths]
        assert "playlist" not in refused  # found before any reload
        reason = channel.sessions[0].reason
        assert reason is not None
        assert "closed its connection and refuses new ones" in reason
        assert t.b.times("open") == [switched_at]
        assert t.b_transport.accepted == [channel.sessions[1].opened_at]


async def test_without_the_watch_a_killed_engine_is_found_by_the_next_reload(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with two_engines(watch=True, failover_watch=False) as t:
        channel = await t.h.wait_channel()
        await trio.sleep(3.0)
        t.a_transport.refusing = True
        killed_at = trio.current_time()
        switched_at = await _switched(channel)
        assert t.a_transport.accepted == []  # TRIOPROXY_FAILOVER_WATCH=0: no connection held
        refused = t.a_transport.refused_paths
        reloads = [at for at, path in refused if request_kind(path) == "playlist"]
        assert switched_at == reloads[0] > killed_at


async def test_a_reload_cut_by_the_engine_going_away_switches_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with two_engines() as t:
        dying = t.a_dying
        channel = await t.h.wait_channel()
        await trio.sleep(3.0)
        dying.dying = True
        switched_at = await _switched(channel)
        # The cut reload is tried again at once, which is refused: no backoff in between.
        refused = [at for at, path in t.a_transport.refused_paths if "/ace/m/" in path]
        assert refused == [dying.lost_at]
        assert switched_at == dying.lost_at


async def test_a_refused_segment_download_switches_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with two_engines() as t:
        channel = await t.h.wait_channel()
        await trio.sleep(3.0)
        t.a_dying.refuse_segments = True  # the engine went away between reload and download
        switched_at = await _switched(channel)
        assert switched_at == t.a_dying.segments_refused[0]
        assert "engine unreachable" in (channel.sessions[0].reason or "")
        assert channel.engine.base_url == ENGINE_B


async def test_a_segment_download_cut_by_the_engine_going_away_switches_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with two_engines() as t:
        channel = await t.h.wait_channel()
        await trio.sleep(3.0)
        t.a_dying.cut_segment = True
        switched_at = await _switched(channel)
        # Tried again at once, refused: the switch comes then, not after a backoff.
        assert switched_at == t.a_dying.lost_at
        assert "engine unreachable" in (channel.sessions[0].reason or "")


async def test_a_failed_session_is_stopped_beside_the_next_open(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with two_engines(stop_timeout=10.0) as t:
        channel = await t.h.wait_channel()
        await trio.sleep(3.0)
        t.a.hang.add("stop")  # engine A takes its stop and never answers
        t.a.faulty.faults["*"] = "playlist_5xx"
        switched_at = await _switched(channel)
        # B opens at once, not after A's stop gave up (TRIOPROXY_STOP_TIMEOUT).
        assert t.b.times("open") == [switched_at]
        assert t.a.times("stop") == [switched_at]
        await t.h.watch(until=switched_at + 5.0)
        assert channel.engine.base_url == ENGINE_B
        assert channel.state.value == "ready"
        # The stop that never answered is tried again once the channel has closed.
        t.a.hang.clear()
        t.h.registry.stop_channel(channel.name)
        await channel.closed.wait()
        with trio.fail_after(120):
            while not t.a.faulty.inner.sessions or any(  # noqa: ASYNC110 (polls plain data)
                not s.stopped for s in t.a.faulty.inner.sessions.values()
            ):
                await trio.sleep(0.5)
        assert len(t.a.times("stop")) >= 2


def _discontinuity_marked(data: bytes) -> bool:
    """Some packet of ``data`` carries an adaptation field with its discontinuity_indicator."""
    return any(
        data[pos + 3] & 0x20 and data[pos + 4] and data[pos + 5] & 0x80
        for pos in range(0, len(data), PACKET_SIZE)
    )


async def test_a_ts_player_stays_connected_through_a_failover(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with two_engines(media=demo_media()) as t, trio.open_nursery() as nursery:
        channel = await t.h.wait_channel()
        player = TsClient(t.h.app, "/ace/getstream", TS_QUERY)
        nursery.start_soon(player.run)
        await trio.sleep(3.0)
        t.a.faulty.faults["*"] = "playlist_5xx"
        broke_at = trio.current_time()
        switched_at = await _switched(channel)
        await trio.sleep(6.0)
        assert not player.finished.is_set()  # one connection all along
        media = [(at, data) for at, data in player.chunks if data != NULL_PACKET]
        before = [data for at, data in media if at <= broke_at]
        after = [(at, data) for at, data in media if at >= switched_at]
        assert before
        assert len(after) >= 2
        assert not any(_discontinuity_marked(data) for data in before[1:])
        # The first segment of the new session tells demuxers that the clocks jump there.
        assert _discontinuity_marked(after[0][1])
        # Never silent while the channel switched: once the next segment is overdue, null
        # packets every 500 ms until the new session's media.
        quiet = [at for at, _ in player.chunks if broke_at <= at < after[0][0]]
        assert max(b - a for a, b in itertools.pairwise([broke_at, *quiet, after[0][0]])) <= 2.0
        assert {b - a for a, b in itertools.pairwise(quiet)} == {0.5}
        assert sum(1 for at, data in player.chunks if data == NULL_PACKET and at > broke_at) >= 4
        status = (await t.h.client.get("/proxy/status")).json()["channels"][0]
        assert len(status["ts"]["players"]) == 1
        assert status["failovers"] == 1
        player.leave()


async def test_stall_switches_at_its_deadline(autojump_clock: trio.testing.MockClock) -> None:
    async with two_engines() as t:
        channel = await t.h.wait_channel()
        await trio.sleep(3.0)
        t.a.faulty.faults["*"] = "stall"
        switched_at = await _switched(channel)
        last_segment = max(at for at in t.a.times("segment") if at < switched_at)
        assert switched_at == last_segment + STALL_DEADLINE
        assert "stalled" in (channel.sessions[0].reason or "")
        assert t.b.times("open") == [switched_at]


async def test_session_ended_by_the_engine_switches_at_the_next_stat(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with two_engines(stat_interval=2.0) as t:
        channel = await t.h.wait_channel()
        opened = channel.sessions[0].opened_at
        assert opened is not None
        await trio.sleep_until(opened + 3.0)
        assert t.a.faulty.end_session(t.h.session_id())
        switched_at = await _switched(channel)
        assert switched_at == opened + 4.0  # the first stat read after the end
        assert "engine ended the session" in (channel.sessions[0].reason or "")


async def test_open_timeout_switches_at_its_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with two_engines(session_timeout=20.0) as t:
        t.a.faulty.inner.open_delay = 1000.0
        response = await t.h.open_playlist()
        assert response.status_code == 200  # served from B, not a 502
        channel = t.h.channel()
        assert channel.sessions[1].started_at == 20.0
        assert t.b.times("open") == [20.0]
        assert channel.engine.base_url == ENGINE_B


async def test_first_request_refused_by_one_engine_is_served_from_the_other(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with two_engines() as t:
        t.a_transport.refusing = True
        response = await t.h.open_playlist()
        assert response.status_code == 200
        assert t.a_transport.refused == 1
        assert t.b.times("open") == [0.0]
        # The orchestrator never heard of the session that did not open.
        assert t.h.orchestrator.kinds() == ["stream_started"]
        loads = {e["url"]: e["channels"] for e in t.h.registry.directory.snapshot()}
        assert loads == {ENGINE_URL: 0, ENGINE_B: 1}


async def test_engine_left_out_of_the_list_switches_after_three_refreshes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rows = [
        {"host": host, "port": 6878, "health_status": "healthy", "container_id": name}
        for host, name in (("engine.test", "a"), ("engine-b.test", "b"))
    ]
    async with two_engines(engines=(), engine_refresh_interval=10.0) as t:
        t.h.orchestrator.engines = list(rows)
        # Read the list now: the harness's own first read may have come before it was filled.
        await t.h.registry.directory.refresh()
        channel = await t.h.wait_channel()
        assert channel.engine.base_url == ENGINE_URL
        t.h.orchestrator.engines = [rows[1]]  # engine A is unhealthy, B still listed
        switched_at = await _switched(channel)
        # Left out of the reads at 10, 20, 30 and 40 s: three refresh intervals, then moved.
        assert switched_at == 40.0
        assert channel.engine.base_url == ENGINE_B
        assert "left the orchestrator's engine list" in (channel.sessions[0].reason or "")
        await trio.sleep(1.0)
        assert t.h.orchestrator.kinds() == ["stream_started", "stream_ended", "stream_started"]


async def test_breaker_keeps_requests_off_the_failed_engine(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with two_engines(failover_cooldown=30.0) as t:
        channel = await t.h.wait_channel()
        t.a_transport.refusing = True
        switched_at = await _switched(channel)
        assert channel.engine.base_url == ENGINE_B
        refused = t.a_transport.refused
        # A new channel while A's breaker is open goes to B, though A carries nothing.
        other = await t.h.wait_channel(CONTENT_B)
        assert other.engine.base_url == ENGINE_B
        await trio.sleep_until(switched_at + 29.0)
        assert t.a_transport.refused == refused
        assert t.a.after(switched_at) == []
        snapshot = {e["url"]: e for e in t.h.registry.directory.snapshot()}
        assert snapshot[ENGINE_URL]["breaker_open_seconds"] == 1.0
        assert snapshot[ENGINE_B]["channels"] == 2
        assert snapshot[ENGINE_URL]["channels"] == 0


async def test_orchestrator_sees_the_old_stream_end_before_the_new_one_starts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with two_engines() as t:
        channel = await t.h.wait_channel()
        old = channel.stream_id
        t.a_transport.refusing = True
        await _switched(channel)
        await channel.ready.wait()
        expected = ["stream_started", "stream_ended", "stream_started"]
        while t.h.orchestrator.kinds() != expected:  # noqa: ASYNC110 (polls plain data)
            await trio.sleep(0.1)
        events = t.h.orchestrator.events
        assert events[1].payload["reason"].startswith("failover: ")
        assert events[1].at <= events[2].at
        orch = t.h.orchestrator
        assert list(orch.running) == [channel.stream_id] != [old]
        assert orch.per_container() == {None: 1}
        t.h.registry.stop_channel(CONTENT_A)
        await channel.closed.wait()
        assert orch.kinds()[-1] == "stream_ended"
        assert orch.running == {}
        assert all(orch.started[s] == orch.ended[s] == 1 for s in orch.streams)
        loads = {e["url"]: e["channels"] for e in t.h.registry.directory.snapshot()}
        assert loads == {ENGINE_URL: 0, ENGINE_B: 0}


async def test_players_keep_their_url_through_a_failover(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with two_engines() as t:
        url = await t.h.start()
        log = PlayerLog()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(t.h.play, url, 60.0, 2.0, log=log))
            await trio.sleep(12.0)
            t.a_transport.refusing = True
        assert set(log.statuses("playlist")) == {200}
        assert log.sequences == sorted(set(log.sequences))  # never back, never twice
        channel = t.h.channel()
        assert channel.switches.total == 1
        assert channel.engine.base_url == ENGINE_B
        # One discontinuity since the channel began: where the new session's segments start.
        assert [s.discontinuity_count for s in channel.window.latest(1)] == [1]
        rendered = channel.render_playlist(lambda s: f"{s.sequence}.ts")
        assert "#EXT-X-DISCONTINUITY-SEQUENCE:1\n" in rendered


async def test_switch_limit_ends_the_channel_naming_every_attempt(
    autojump_clock: trio.testing.MockClock, no_jitter: None
) -> None:
    config: dict[str, Any] = {"failover_max_switches": 2, "failover_backoff": 1.0}
    async with two_engines(**config) as t:
        channel = await t.h.wait_channel()
        t.a_transport.refusing = True
        t.b_transport.refusing = True
        await channel.closed.wait()
        reason = channel.end_reason or ""
        assert "after 3 engine sessions" in reason
        assert f"1) {ENGINE_URL}: engine playlist failing" in reason
        assert f"2) {ENGINE_B}: engine session failed" in reason
        assert f"3) {ENGINE_B}: engine session failed" in reason
        # No loop: one open on B at once, one after the backoff; A untouched once its breaker
        # opened.
        assert t.b_transport.refused == 2
        assert channel.sessions[2].started_at - channel.sessions[1].started_at == 1.0
        assert t.h.orchestrator.kinds() == ["stream_started", "stream_ended"]
        assert t.h.orchestrator.running == {}


async def test_every_engine_failing_never_loops(autojump_clock: trio.testing.MockClock) -> None:
    async with two_engines(failover_max_switches=5, failover_window=300.0) as t:
        channel = await t.h.wait_channel()
        t.a_transport.refusing = t.b_transport.refusing = True
        await channel.closed.wait()
        assert len(channel.sessions) == 6  # the first, then five switches
        assert channel.switches.total == 5
        # Pauses double: 0, 1, 2, 4, 8 s between the switches.
        starts = [record.started_at for record in channel.sessions[1:]]
        pauses = [b - a for a, b in itertools.pairwise(starts)]
        assert pauses == pytest.approx([1.0, 2.0, 4.0, 8.0], abs=1e-9)
        assert t.h.registry.get(CONTENT_A) is None


async def test_failover_disabled_ends_the_channel(autojump_clock: trio.testing.MockClock) -> None:
    async with two_engines(failover_max_switches=0) as t:
        channel = await t.h.wait_channel()
        t.a_transport.refusing = True
        await channel.closed.wait()
        assert channel.switches.total == 0
        assert t.b.times("open") == []
        assert "engine playlist failing" in (channel.end_reason or "")


async def test_status_shows_each_session(autojump_clock: trio.testing.MockClock) -> None:
    async with two_engines() as t:
        channel = await t.h.wait_channel()
        t.a_transport.refusing = True
        await _switched(channel)
        await channel.ready.wait()
        status = (await t.h.client.get("/proxy/status")).json()
        shown = status["channels"][0]
        assert shown["failovers"] == 1
        sessions = shown["sessions"]
        assert [s["engine"] for s in sessions] == [ENGINE_URL, ENGINE_B]
        assert sessions[0]["opened"]
        assert sessions[0]["ended"]
        assert sessions[0]["reason"].startswith("engine playlist failing")
        assert sessions[1]["opened"]
        assert not sessions[1]["ended"]
        assert status["failovers"] == 1
