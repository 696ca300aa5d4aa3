"""Stopping a channel: DELETE answers at once; the teardown is bounded and leaves nothing behind."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import trio
import trio.testing

from trioproxy.channels.status import registry_status
from trioproxy.testing.engine import SimulatedEngine
from trioproxy.testing.faults import request_kind
from trioproxy.testing.harness import (
    CONTENT_A,
    CONTENT_B,
    ENGINE_URL,
    asgi_transport,
    channel_tasks,
    default_config,
    harness,
    small_media,
)
from trioproxy.testing.orchestrator import FakeOrchestrator


async def test_stop_before_stream_started_was_answered(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness(orchestrator=FakeOrchestrator(delay=5.0)) as h:
        h.registry.get_or_start("content_id", CONTENT_A)
        channel = h.registry.get(CONTENT_A)
        assert channel is not None
        await channel.ready.wait()  # the session is open and segments are flowing ...
        assert channel.stream_id is not None
        assert h.orchestrator.events == []  # stream_started is on its way, not answered yet
        stopped_at = trio.current_time()
        response = await h.client.delete(f"/proxy/channels/{CONTENT_A}")
        assert response.status_code == 202
        assert trio.current_time() == stopped_at  # answered at once

        await channel.closed.wait()
        started, ended = h.orchestrator.events
        assert started.kind == "stream_started"
        assert ended.kind == "stream_ended"
        assert started.payload["labels"]["stream_id"] == channel.stream_id
        assert ended.payload["stream_id"] == channel.stream_id
        assert ended.payload["reason"] == "stopped by request"
        assert started.at < ended.at
        assert [s.session_id for s in h.sim.sessions.values()] == h.sim.stops
        assert h.sim.open_sessions == []
        assert channel_tasks(h.registry) == []
        assert registry_status(h.registry)["closing"] == []


async def test_new_request_during_teardown_gets_a_fresh_channel_without_delay(
    autojump_clock: trio.testing.MockClock,
) -> None:
    engine = SimulatedEngine(small_media(), durations=[2.0], backlog=6.0, stop_delay=8.0)
    async with harness(engine=engine) as h:
        assert (await h.open_playlist(CONTENT_A)).status_code == 200
        old = h.registry.get(CONTENT_A)
        assert old is not None
        assert (await h.client.delete(f"/proxy/channels/{CONTENT_A}")).status_code == 202
        asked_at = trio.current_time()
        response = await h.open_playlist(CONTENT_A)
        assert response.status_code == 200
        assert trio.current_time() == asked_at  # the old channel's slow engine stop is not ours
        new = h.registry.get(CONTENT_A)
        assert new is not None
        assert new is not old
        assert f"/{new.incarnation}/" in response.text
        assert not old.closed.is_set()  # still stopping its engine session
        await old.closed.wait()
        assert trio.current_time() == asked_at + 8.0
        assert len(h.sim.sessions) == 2
        assert len(h.sim.open_sessions) == 1


async def test_delete_needs_the_api_key_when_one_is_set(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness(default_config(api_key="s3cret")) as h:
        h.registry.get_or_start("content_id", CONTENT_A)
        url = f"/proxy/channels/{CONTENT_A}"
        assert (await h.client.delete(url)).status_code == 401
        wrong = await h.client.delete(url, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 403
        assert wrong.json()["error"] == "forbidden"
        right = await h.client.delete(url, headers={"Authorization": "Bearer s3cret"})
        assert right.status_code == 202
        missing = await h.client.delete(
            f"/proxy/channels/{CONTENT_B}", headers={"Authorization": "Bearer s3cret"}
        )
        assert missing.status_code == 404


async def test_shutdown_stops_every_channel_within_the_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = default_config(shutdown_timeout=4.0)
    async with harness(config) as h:
        for key in (CONTENT_A, CONTENT_B):
            assert (await h.open_playlist(key)).status_code == 200
        channels = h.registry.channels
        h.orchestrator_transport.refusing = True  # stream_ended cannot be delivered now
        began = trio.current_time()
        h.registry.shutdown()
        for channel in channels:
            await channel.closed.wait()
        assert trio.current_time() - began <= 4.0
        assert h.sim.open_sessions == []
        assert {c.end_reason for c in channels} == {"proxy shutdown"}


class StopThenRefuse(httpx.AsyncBaseTransport):
    """Once armed, the next playlist reload stops the channel and is refused in the same step:
    a stop and a session failure arriving together."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.stop: Callable[[], None] | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.stop is not None and request_kind(request.url.path) == "playlist":
            stop, self.stop = self.stop, None
            stop()
            refused = ConnectionRefusedError(111, "Connection refused")
            raise httpx.ConnectError("connection refused", request=request) from refused
        return await self.inner.handle_async_request(request)


async def test_a_stop_arriving_with_a_session_failure_still_stops_the_engine_session(
    autojump_clock: trio.testing.MockClock,
) -> None:
    engine = SimulatedEngine(small_media(), durations=[2.0], backlog=6.0)
    transport = StopThenRefuse(asgi_transport(engine))
    async with harness(engine=engine, mounts={ENGINE_URL: transport}) as h:
        channel = await h.wait_channel()
        session_id = h.session_id()
        transport.stop = lambda: channel.stop("stopped by request")
        await channel.closed.wait()
        stopped_at = trio.current_time()
        assert h.sim.stops == [session_id]
        assert h.sim.open_sessions == []
        assert h.registry.engine_stops_pending == 0
        assert channel.end_reason == "stopped by request"
        assert channel.sessions[0].ended_at is not None
        assert channel.sessions[0].ended_at <= stopped_at
        assert "engine playlist failing" in (channel.sessions[0].reason or "")
        assert h.orchestrator.kinds() == ["stream_started", "stream_ended"]
