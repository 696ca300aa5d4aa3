"""Failover end to end: the real service on 127.0.0.1:0, simulated engines serving real H.264
MPEG-TS on sockets of their own, a fake orchestrator, and ffmpeg as the players.

An engine dies the ways real ones do (:class:`~trioproxy.testing.engine_server.EngineServer`):
killed (nothing listens: connections refused), hung (connections accepted, nothing answered),
or down for a while and back on the same port. The players read the proxy's URLs throughout and
must not notice more than the switch: decoding goes on, the HLS URL keeps answering, the TS
connection stays open. The switch time is measured, never bounded: how long it may take is the
benchmark's business (``benchmarks/failover.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import trio

from trioproxy.config import Config
from trioproxy.testing.engine import DEMO_CONTENT_ID, SimulatedEngine, demo_media
from trioproxy.testing.engine_server import EngineServer, engine_servers
from trioproxy.testing.orchestrator import FakeOrchestrator
from trioproxy.testing.ts_reader import TsReader

from ..media import Decoder, ffmpeg_decoding, running_service, serve_asgi
from ..tools import require_tools

pytestmark = require_tools("ffmpeg")
# Polling real time in a loop is how these tests wait for what a real service does.
# ruff: noqa: ASYNC110

FPS = 25.0
"""The frame rate of ``demo_media()`` (2 s segments of H.264)."""
OTHER_CONTENT = "fedcba9876543210fedcba9876543210fedcba98"


def live_engine() -> SimulatedEngine:
    """A channel already on air: 12 s of it exist when a session opens."""
    return SimulatedEngine(demo_media(), durations=[2.0], list_size=6, backlog=12.0, seamless=True)


@dataclass
class Rig:
    """The proxy, its engines (the first one takes the channel) and its orchestrator."""

    url: str
    engines: list[EngineServer]
    orchestrator: FakeOrchestrator
    http: httpx.AsyncClient

    @property
    def hls_url(self) -> str:
        return f"{self.url}/ace/getstream?id={DEMO_CONTENT_ID}"

    @property
    def ts_url(self) -> str:
        return f"{self.url}/ace/getstream?id={DEMO_CONTENT_ID}&format=ts"

    async def status(self) -> dict[str, Any]:
        answer: dict[str, Any] = (await self.http.get(f"{self.url}/proxy/status")).json()
        return answer

    async def channel(self, key: str = DEMO_CONTENT_ID) -> dict[str, Any]:
        for channel in (await self.status())["channels"]:
            if channel["channel"] == key:
                return dict(channel)
        raise AssertionError(f"no running channel {key}")

    async def breaker_open(self, engine: EngineServer) -> bool:
        shown = {e["url"]: e for e in (await self.status())["engines"]}
        return shown[engine.url]["breaker_open_seconds"] is not None


@asynccontextmanager
async def failover_rig(
    engines: int, *, make: Callable[[], SimulatedEngine] = live_engine, **changes: Any
) -> AsyncIterator[Rig]:
    """The real service (as ``trioproxy serve`` runs it) in front of ``engines`` simulated
    engines (each made by ``make``) and a fake orchestrator; shut down as on SIGTERM on exit."""
    orchestrator = FakeOrchestrator()
    async with (
        engine_servers([make() for _ in range(engines)]) as servers,
        serve_asgi(orchestrator) as orchestrator_url,
        httpx.AsyncClient(timeout=20) as http,
    ):
        config = Config(
            bind="127.0.0.1:0",
            engines=tuple(server.url for server in servers),
            orchestrator_url=orchestrator_url,
            **changes,
        )
        async with running_service(config) as url:
            yield Rig(url, servers, orchestrator, http)


async def playing(rig: Rig, *decoders: Decoder) -> None:
    """Wait until the channel is ready and every player decodes."""
    with trio.fail_after(30):
        while not all(d.decoded(trio.current_time()) >= 2.0 for d in decoders):
            assert all(d.exited is None for d in decoders)
            await trio.sleep(0.2)
        while (await rig.channel())["state"] != "ready":
            await trio.sleep(0.2)


async def switched(rig: Rig, since: int) -> float:
    """Wait until the channel moved to a new session and a segment of it is in the window
    (past sequence ``since``); when that was seen."""
    with trio.fail_after(45):
        while True:
            channel = await rig.channel()
            if channel["failovers"] >= 1 and channel["buffer"]["last_sequence"] > since:
                return trio.current_time()
            await trio.sleep(0.1)


async def breaker_opened(rig: Rig, engine: EngineServer) -> float:
    """When the first status that shows ``engine``'s breaker open was asked for."""
    with trio.fail_after(45):
        while True:
            asked = trio.current_time()
            if await rig.breaker_open(engine):
                return asked
            await trio.sleep(0.1)


def media_sequence(playlist: str) -> int:
    line = next(line for line in playlist.splitlines() if line.startswith("#EXT-X-MEDIA-SEQUENCE:"))
    return int(line.partition(":")[2])


def assert_decoded_through(decoder: Decoder, broke: float, end: float, switch: float) -> None:
    """The player kept decoding: from the failure to the end it decoded at least the wall time
    less the switch time, and it never gave up."""
    assert decoder.exited is None, f"ffmpeg stopped ({decoder.exited}): {decoder.errors[-2000:]}"
    decoded = decoder.decoded(end) - decoder.decoded(broke)
    assert decoded >= (end - broke) - switch, (decoded, end - broke, switch, decoder.url)


def assert_events_in_order(rig: Rig) -> None:
    """stream_ended (failover) for the old session, then stream_started for the new one."""
    events = [e for e in rig.orchestrator.events if e.payload["content_id"] == DEMO_CONTENT_ID]
    assert [e.kind for e in events] == ["stream_started", "stream_ended", "stream_started"]
    first, ended, second = events
    old = first.payload["labels"]["stream_id"]
    assert ended.payload["stream_id"] == old
    assert ended.payload["reason"].startswith("failover: "), ended.payload
    assert second.payload["labels"]["stream_id"] != old
    assert ended.at <= second.at
    running = [s for s in rig.orchestrator.running if s.startswith(DEMO_CONTENT_ID)]
    assert running == [second.payload["labels"]["stream_id"]]


def assert_two_sessions(channel: dict[str, Any], first: EngineServer, second: EngineServer) -> None:
    sessions = channel["sessions"]
    assert [s["engine"] for s in sessions] == [first.url, second.url]
    assert sessions[0]["opened"]
    assert sessions[0]["ended"]
    assert sessions[0]["reason"]
    assert sessions[1]["opened"]
    assert not sessions[1]["ended"]
    assert channel["failovers"] == 1
    assert channel["engine"]["url"] == second.url


async def test_players_keep_decoding_when_the_engine_is_killed() -> None:
    async with (
        failover_rig(2) as rig,
        ffmpeg_decoding(rig.hls_url, FPS) as hls,
        ffmpeg_decoding(rig.ts_url, FPS) as ts,
    ):
        a, b = rig.engines
        await playing(rig, hls, ts)
        await trio.sleep(4.0)
        since = (await rig.channel())["buffer"]["last_sequence"]
        killed = trio.current_time()
        await a.kill()
        breaker = await breaker_opened(rig, a)
        switch = await switched(rig, since) - killed
        # The engine is back, but its breaker is open: nothing goes to it, not even a new
        # channel though it carries none.
        await a.start()
        other = await rig.http.get(f"{rig.url}/ace/getstream?id={OTHER_CONTENT}")
        assert other.status_code == 302
        assert (await rig.channel(OTHER_CONTENT))["engine"]["url"] == b.url
        stopped = await rig.http.delete(f"{rig.url}/proxy/channels/{OTHER_CONTENT}")
        assert stopped.status_code == 202
        await trio.sleep(12.0)
        end = trio.current_time()
        for decoder in (hls, ts):
            assert_decoded_through(decoder, killed, end, switch)
        assert a.since(breaker) == []
        channel = await rig.channel()
        assert_two_sessions(channel, a, b)
        assert_events_in_order(rig)
        # The engine watch heard the death (its idle connection closed, its connect refused),
        # unless a request was in flight to the engine as it died and found it first.
        if not a.since(killed - 0.05):
            assert "closed its connection and refuses new ones" in channel["sessions"][0]["reason"]


async def test_players_keep_decoding_when_the_engine_hangs() -> None:
    # The failed session's stop hangs too, and the switch waits for it (see the next test):
    # a short stop timeout keeps this test short.
    async with (
        failover_rig(2, stop_timeout=3.0) as rig,
        ffmpeg_decoding(rig.hls_url, FPS) as hls,
        ffmpeg_decoding(rig.ts_url, FPS) as ts,
    ):
        a, b = rig.engines
        await playing(rig, hls, ts)
        await trio.sleep(4.0)
        since = (await rig.channel())["buffer"]["last_sequence"]
        hung = trio.current_time()
        await a.hang()
        breaker = await breaker_opened(rig, a)
        switch = await switched(rig, since) - hung
        await trio.sleep(10.0)
        end = trio.current_time()
        for decoder in (hls, ts):
            assert_decoded_through(decoder, hung, end, switch)
        # The hung engine was asked (its playlist, the stop of its session), never answered,
        # and got nothing once its breaker opened but that stop, sent as the breaker opens (on a
        # busy machine it can arrive after a status read already showed the breaker open).
        assert {r.kind for r in a.since(hung)} >= {"playlist", "stop"}
        assert all(r.hung for r in a.since(hung))
        assert [r.kind for r in a.since(breaker) if r.kind != "stop"] == []
        assert len([r for r in a.since(hung) if r.kind == "stop"]) == 1
        assert_two_sessions(await rig.channel(), a, b)
        assert_events_in_order(rig)


async def test_a_hung_engine_does_not_hold_up_the_new_session() -> None:
    async with failover_rig(2, stop_timeout=10.0) as rig:
        a, b = rig.engines
        assert (await rig.http.get(rig.hls_url, follow_redirects=True)).status_code == 200
        await a.hang()
        with trio.fail_after(45):
            while not b.since(0.0, "open"):
                await trio.sleep(0.1)
        opened_on_b = b.since(0.0, "open")[0].at
        stop = next(r for r in a.since(a.changed_at) if r.kind == "stop")
    # The new session is asked for while the hung engine still holds the stop, not once its
    # stop timed out (10 s after it was sent).
    assert opened_on_b < stop.at + 5.0


async def test_players_keep_their_urls_while_the_only_engine_is_down_for_10_s() -> None:
    async with failover_rig(1) as rig:
        (a,) = rig.engines
        first = await rig.http.get(rig.hls_url)
        assert first.status_code == 302
        playlist_url = rig.url + first.headers["location"]
        statuses: list[tuple[float, int, str]] = []

        async def hls_player() -> None:
            while True:
                response = await rig.http.get(playlist_url)
                statuses.append((trio.current_time(), response.status_code, response.text))
                await trio.sleep(1.0)

        reader = TsReader(rig.ts_url)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(hls_player)
            nursery.start_soon(reader.run, rig.http)
            with trio.fail_after(30):
                while reader.media_packets == 0 or (await rig.channel())["state"] != "ready":
                    await trio.sleep(0.2)
            await trio.sleep(2.0)
            since = (await rig.channel())["buffer"]["last_sequence"]
            killed = trio.current_time()
            await a.kill()
            await trio.sleep(10.0)
            await a.start()
            back = trio.current_time()
            resumed = await switched(rig, since)
            await trio.sleep(6.0)
            end = trio.current_time()
            nursery.cancel_scope.cancel()
        channel = await rig.channel()
    # It resumed on the same engine, the one it has.
    assert channel["engine"]["url"] == a.url
    assert channel["sessions"][-1]["engine"] == a.url
    assert channel["sessions"][-1]["opened"]
    assert not channel["sessions"][-1]["ended"]
    assert all(s["ended"] for s in channel["sessions"][:-1])
    assert a.since(back, "open")
    # The HLS player's URL answered all along; after, it lists the new session's segments, the
    # first of them after a discontinuity.
    assert {status for _, status, _ in statuses} == {200}
    at_kill = [text for at, _, text in statuses if at <= killed][-1]
    after = [text for at, _, text in statuses if at > resumed]
    assert after
    assert "#EXT-X-DISCONTINUITY\n" in after[0]
    assert media_sequence(after[-1]) > media_sequence(at_kill)
    # The TS connection stayed open, kept busy by null packets while nothing came, then media.
    assert reader.status == 200
    assert not reader.ended_by_server
    assert reader.null_packets(killed + 3.0, back) >= 7  # one a second; 2 are sent
    assert reader.media_after(resumed) > 0
    assert reader.longest_media_gap(killed, end) <= resumed - killed + 4.0  # two segments
    # The failing opens announced nothing: one stream ended by the failover, one started (and
    # ended at the proxy's shutdown).
    events = rig.orchestrator.events
    assert [e.kind for e in events] == ["stream_started", "stream_ended"] * 2
    assert events[1].payload["reason"].startswith("failover: ")
