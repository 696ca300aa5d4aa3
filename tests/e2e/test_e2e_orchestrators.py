"""End to end on real sockets against each orchestrator surface: v1, v2 on port 8083 (key on every
request) and v2's proxy-plane ``/api/v1``. Engines come from the orchestrator's ``/engines``, read
with the key. A channel plays for 30 s and the books list it with its engine counted; DELETE
clears both; a stop followed at once by a new request for the same content leaves one stream and
a count of 1. The three surfaces run side by side, each with its own engine, orchestrator and
proxy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import trio
from hypercorn.trio import serve as hypercorn_serve

from trioproxy.config import Config
from trioproxy.service import hypercorn_config
from trioproxy.testing.engine import SimulatedEngine
from trioproxy.testing.harness import CONTENT_A, CONTENT_B, small_media
from trioproxy.testing.orchestrator import (
    PROXY_PLANE,
    FakeOrchestrator,
    V1Wire,
    V2Wire,
    Wire,
)
from trioproxy.testing.players import HttpxGetter, Player, PlayerLog

from ..media import running_service

KEY = "e2e-orchestrator-key"
PLAY_SECONDS = 30.0

SURFACES: list[tuple[str, Callable[[], Wire], str, str]] = [
    # name, wire, path under the orchestrator's address, the API the proxy should detect
    ("v1", V1Wire, "", "v1"),
    ("v2 8083", V2Wire, "", "v2"),
    ("v2 /api/v1", lambda: V2Wire(PROXY_PLANE), "/api/v1", "v2"),
]


async def eventually(check: Callable[[], bool], what: str, seconds: float = 15.0) -> None:
    """Poll ``check`` on the real clock until it holds (the books change in another server)."""
    deadline = trio.current_time() + seconds
    while True:
        if check():
            return
        if trio.current_time() > deadline:
            raise AssertionError(f"not within {seconds:g} s: {what}")
        await trio.sleep(0.05)


async def status(http: httpx.AsyncClient) -> Any:
    """The status as the operator sees it: with the key, session ids included."""
    response = await http.get("/proxy/status", headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 200
    assert response.json()["redacted"] is False
    return response.json()


async def open_channel(http: httpx.AsyncClient, key: str) -> None:
    response = await http.get("/ace/getstream", params={"id": key}, follow_redirects=True)
    assert response.status_code == 200, response.text


async def channel_session(http: httpx.AsyncClient, key: str) -> str:
    (channel,) = [c for c in (await status(http))["channels"] if c["channel"] == key]
    return str(channel["playback_session_id"])


async def surface(name: str, wire: Wire, under: str, api: str) -> None:
    engine = SimulatedEngine(small_media(), durations=[1.0], backlog=3.0)
    box = f"box-{name.replace(' ', '-').replace('/', '')}"
    async with trio.open_nursery() as servers:
        engine_url = (
            await servers.start(hypercorn_serve, engine, hypercorn_config("127.0.0.1:0"))
        )[0]
        host, port = engine_url.removeprefix("http://").split(":")
        orchestrator = FakeOrchestrator(
            api_key=KEY,
            engines=[
                {"container_id": box, "host": host, "port": int(port), "health_status": "healthy"}
            ],
            delays={"stream_ended": 1.0},  # a late end would overtake the next start
            wire=wire,
        )
        orchestrator_url = (
            await servers.start(hypercorn_serve, orchestrator, hypercorn_config("127.0.0.1:0"))
        )[0]
        config = Config(
            bind="127.0.0.1:0",
            orchestrator_url=orchestrator_url + under,
            api_key=KEY,
            watch_interval=2.0,
        )
        async with running_service(config) as base:
            auth = {"Authorization": f"Bearer {KEY}"}
            async with httpx.AsyncClient(base_url=base, timeout=20) as http:
                for _ in range(300):  # the engine list is read from the orchestrator
                    snapshot = await status(http)
                    if snapshot["engines"]:
                        break
                    await trio.sleep(0.05)
                assert snapshot["engines"][0]["container_id"] == box, name
                assert snapshot["events"]["api"] == api, name

                # A player watches for 30 s; nobody stops the channel.
                log = PlayerLog()
                await Player(HttpxGetter(http, base), log).watch(
                    CONTENT_A, until=trio.current_time() + PLAY_SECONDS
                )
                assert log.errors == [], (name, log.errors[:5])
                assert log.segments >= PLAY_SECONDS / 2, (name, log.segments)
                session = await channel_session(http, CONTENT_A)
                (stream,) = orchestrator.running.values()
                assert (stream.key, stream.playback_session_id) == (CONTENT_A, session), name
                assert orchestrator.load == {box: 1}, name

                # DELETE clears the books and the engine's count.
                deleted = await http.delete(f"/proxy/channels/{CONTENT_A}", headers=auth)
                assert deleted.status_code == 202
                await eventually(
                    lambda: not orchestrator.running and orchestrator.load[box] == 0,
                    f"{name}: books cleared",
                )

                # Stopped and at once asked for again: one stream, counted once.
                await open_channel(http, CONTENT_B)
                await eventually(lambda: len(orchestrator.running) == 1, f"{name}: B booked")
                deleted = await http.delete(f"/proxy/channels/{CONTENT_B}", headers=auth)
                assert deleted.status_code == 202
                await open_channel(http, CONTENT_B)
                await eventually(
                    lambda: (
                        orchestrator.kinds().count("stream_started") == 3
                        and orchestrator.in_flight == 0
                    ),
                    f"{name}: the new start delivered",
                )
                (stream,) = orchestrator.running.values()
                assert stream.key == CONTENT_B, name
                assert stream.playback_session_id == await channel_session(http, CONTENT_B), name
                assert orchestrator.load == {box: 1}, name
                assert orchestrator.kinds() == [
                    "stream_started",
                    "stream_ended",
                    "stream_started",
                    "stream_ended",
                    "stream_started",
                ], name
        # Shutdown ends the last channel in the books too.
        assert orchestrator.running == {}, name
        assert orchestrator.load[box] == 0, name
        assert orchestrator.refused == [], (name, orchestrator.refused)
        assert orchestrator.ended_unknown == [], name
        assert orchestrator.overwritten == [], name
        assert orchestrator.requests["/streams"] > 0, name  # the watcher read it with the key
        assert engine.open_sessions == [], name
        servers.cancel_scope.cancel()


async def test_each_orchestrator_surface_books_channels_exactly() -> None:
    with trio.fail_after(PLAY_SECONDS + 45):
        async with trio.open_nursery() as nursery:
            for name, wire, under, api in SURFACES:
                nursery.start_soon(surface, name, wire(), under, api)
