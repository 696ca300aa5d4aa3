"""Orchestrator faults: down, slow, 5xx, wrong key, garbage. Delivery survives, players never wait
for it, a wrong key is one error line; and streams the orchestrator ends stop our channels."""

from __future__ import annotations

import logging
from functools import partial

import pytest
import trio
import trio.testing

from trioproxy.channels.status import registry_status
from trioproxy.testing.harness import (
    CONTENT_A,
    CONTENT_B,
    Harness,
    channel_tasks,
    default_config,
    harness,
)
from trioproxy.testing.orchestrator import FakeOrchestrator
from trioproxy.testing.players import PlayerLog

pytestmark = pytest.mark.usefixtures("no_jitter")


async def _ready_at(h: Harness, key: str = CONTENT_A) -> float:
    """Start a channel and return when its first playlist was answered."""
    url = await h.start(key)
    response = await h.client.get(url)
    assert response.status_code == 200
    return trio.current_time()


async def _baseline_ready_time() -> float:
    async with harness() as h:
        return await _ready_at(h)


async def _watch(h: Harness, key: str, nursery: trio.Nursery) -> None:
    """A player that keeps ``key`` playing until the nursery is cancelled."""
    url = await h.start(key)
    nursery.start_soon(h.play, url)


@pytest.mark.parametrize("fault", ["down", "slow", "5xx", "garbage"])
async def test_players_never_wait_for_a_failing_orchestrator(
    autojump_clock: trio.testing.MockClock, fault: str
) -> None:
    baseline = await _baseline_ready_time()
    start = trio.current_time()
    async with harness() as h:
        if fault == "down":
            h.orchestrator_transport.refusing = True
        elif fault == "slow":
            h.orchestrator.delay = 30.0
            h.orchestrator.list_delay = 30.0
        elif fault == "5xx":
            h.orchestrator.status = 503
            h.orchestrator.list_status = 503
        else:
            h.orchestrator.list_body = b"{not json"
        ready = await _ready_at(h)
        assert ready - start == baseline  # the first playlist comes just as fast
        async with trio.open_nursery() as nursery:
            await _watch(h, CONTENT_A, nursery)
            await _watch(h, CONTENT_B, nursery)
            url_b = await h.start(CONTENT_B)
            statuses = await h.play(url_b, until=trio.current_time() + 60.0)
            assert set(statuses) == {200}
            # The orchestrator recovers: the stream_started retried meanwhile gets through, once.
            h.orchestrator_transport.refusing = False
            h.orchestrator.delay = h.orchestrator.list_delay = 0.0
            h.orchestrator.status = h.orchestrator.list_status = 200
            h.orchestrator.list_body = None
            await trio.sleep(30.0)
            assert h.orchestrator.kinds().count("stream_started") == 2
            # Channels were never stopped because the stream list could not be read.
            assert h.registry.get(CONTENT_A) is not None
            assert h.registry.get(CONTENT_B) is not None
            nursery.cancel_scope.cancel()


async def test_slow_orchestrator_retries_are_bounded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        h.orchestrator.delay = 30.0
        await _ready_at(h)
        await trio.sleep(120.0)
        # Each POST gives up after 15 s, then backs off 0.5, 1, 2, 4, 8 s: a handful, not a storm.
        assert h.orchestrator.attempts <= 8
        assert h.orchestrator.events == []


async def test_wrong_key_is_one_error_line(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "the-wrong-key-0123456789"
    orchestrator = FakeOrchestrator(api_key="the-right-key")
    config = default_config(api_key=secret, watch_interval=5.0)
    async with harness(config, orchestrator=orchestrator) as h:
        await _ready_at(h, CONTENT_A)
        await _ready_at(h, CONTENT_B)
        await trio.sleep(60.0)  # many list reads and both channels' events rejected
        assert orchestrator.list_reads >= 20
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert "API_KEY is wrong" in errors[0].getMessage()
    assert all(secret not in r.getMessage() for r in caplog.records)
    assert orchestrator.events == []


async def test_channel_the_orchestrator_ends_is_stopped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = default_config(watch_interval=15.0)
    async with harness(config) as h, trio.open_nursery() as nursery:
        await _watch(h, CONTENT_A, nursery)
        await _watch(h, CONTENT_B, nursery)
        await trio.sleep(1.0)
        channel = h.channel(CONTENT_A)
        assert channel.stream_id is not None
        h.orchestrator.end(channel.stream_id)
        ended_at = trio.current_time()
        await channel.closed.wait()
        assert trio.current_time() - ended_at <= 15.0  # the next read of /streams
        assert channel.end_reason == "ended by the orchestrator"
        # Its engine session is stopped, and no stream_ended goes out for a stream the
        # orchestrator no longer knows (it would end another stream on that engine).
        assert len(h.sim.open_sessions) == 1
        assert h.orchestrator.kinds() == ["stream_started", "stream_started"]
        assert h.registry.get(CONTENT_B) is not None
        assert [t for t in channel_tasks(h.registry) if CONTENT_A in t] == []
        # Its players are told, and do not restart it at once.
        refused = await h.client.get("/ace/getstream", params={"id": CONTENT_A})
        assert refused.status_code == 502
        assert "the orchestrator ended this stream" in refused.json()["message"]
        assert len(h.sim.sessions) == 2
        nursery.cancel_scope.cancel()


async def test_a_new_channel_is_not_stopped_before_it_is_listed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    orchestrator = FakeOrchestrator(delay=3.0)  # stream_started takes 3 s to be accepted
    config = default_config(watch_interval=1.0)
    async with (
        harness(config, orchestrator=orchestrator) as h,
        trio.open_nursery() as nursery,
    ):
        await _watch(h, CONTENT_A, nursery)
        await trio.sleep(30.0)
        assert h.channel(CONTENT_A).stopping is False
        assert h.registry.watcher is not None
        assert h.registry.watcher.stopped == 0
        nursery.cancel_scope.cancel()


async def test_looping_content_is_refused_with_422(autojump_clock: trio.testing.MockClock) -> None:
    orchestrator = FakeOrchestrator(looping=[CONTENT_A.upper()])
    async with harness(default_config(watch_interval=5.0), orchestrator=orchestrator) as h:
        await trio.sleep(1.0)
        response = await h.client.get("/ace/getstream", params={"id": CONTENT_A})
        assert response.status_code == 422
        assert response.json()["error"] == "looping_stream"
        assert h.engine.requests["open"] == 0
        h.orchestrator.looping = []
        await trio.sleep(5.0)
        assert (await h.client.get("/ace/getstream", params={"id": CONTENT_A})).status_code == 302


async def test_unreadable_lists_are_logged_once(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with harness(default_config(watch_interval=5.0)) as h:
        h.orchestrator.list_status = 500
        await trio.sleep(99.0)
        warnings = [r for r in caplog.records if r.name == "trioproxy.channels.watcher"]
        assert len(warnings) == 2  # one per endpoint, not one per read
        assert h.registry.watcher is not None
        assert h.registry.watcher.reads == 20  # at 0, 5, ..., 95 s


async def test_the_api_is_found_once_and_shown_in_the_status(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trioproxy.upstream.orchestrator")
    async with harness(default_config(watch_interval=5.0)) as h:
        await _ready_at(h)
        await trio.sleep(30.0)
        status = (await h.client.get("/proxy/status")).json()
        assert status["events"]["api"] == "v1"
        assert h.orchestrator.kinds() == ["stream_started", "stream_ended"]  # no players left
        for event in h.orchestrator.events:  # one body for every API; v1 ignores the rest
            assert event.payload["content_id"] == CONTENT_A
    found = [r.getMessage() for r in caplog.records if "API" in r.getMessage()]
    assert found == [f"orchestrator {h.config.orchestrator_url}: API v1 (GET /engines)"]


async def test_events_for_v2_name_the_content_and_the_engine(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = default_config(orchestrator_api="v2", watch_interval=600.0)
    async with harness(config) as h:
        await _ready_at(h)
        channel = h.channel()
        h.registry.stop_channel(CONTENT_A)
        await channel.closed.wait()
        assert registry_status(h.registry)["events"]["api"] == "v2"
    started, ended = h.orchestrator.events
    assert started.payload["content_id"] == CONTENT_A
    assert "engine_id" in started.payload
    assert started.payload["engine_id"] == started.payload["container_id"]
    assert ended.kind == "stream_ended"
    assert ended.payload["content_id"] == CONTENT_A
    assert ended.payload["stream_id"] == channel.stream_id


ENGINE_ROW = {"container_id": "c1", "host": "engine.test", "port": 6878, "health_status": "healthy"}
OTHER_ROW = {
    "container_id": "c2",
    "host": "engine-b.test",
    "port": 6878,
    "health_status": "healthy",
}


@pytest.mark.parametrize("listed", [[], [OTHER_ROW]], ids=["nothing", "another engine"])
async def test_a_channel_plays_on_while_the_engine_list_leaves_its_engine_out(
    autojump_clock: trio.testing.MockClock, listed: list[object]
) -> None:
    # An orchestrator that restarts lists nothing for a while; one whose health probe of our
    # engine timed out lists the others only. Neither says our engine stopped serving.
    orchestrator = FakeOrchestrator(engines=[ENGINE_ROW])
    config = default_config(engines=(), engine_refresh_interval=10.0)
    async with harness(config, orchestrator=orchestrator) as h:
        await trio.sleep(1.0)  # the engine list is read
        url = await h.start()
        log = PlayerLog()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(h.play, url, 70.0, log=log))
            await trio.sleep_until(5.0)
            orchestrator.engines = list(listed)  # left out of the reads at 10, 20 and 30 s
            await trio.sleep_until(35.0)
            orchestrator.engines = [ENGINE_ROW]
        assert set(log.statuses("playlist")) == {200}
        assert log.sequences == sorted(set(log.sequences))  # no gap, no restart
        channel = h.channel()
        assert channel.switches.total == 0
        assert len(h.sim.sessions) == 1  # one engine session, never reopened
        assert orchestrator.kinds() == ["stream_started"]  # no stream ended or restarted
        assert orchestrator.requests["/engines"] >= 7


async def test_deeply_nested_answers_everywhere_leave_the_proxy_playing(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    orchestrator = FakeOrchestrator(engines=[ENGINE_ROW])
    config = default_config(engines=(), engine_refresh_interval=10.0, watch_interval=5.0)
    async with harness(config, orchestrator=orchestrator) as h:
        await trio.sleep(1.0)  # the engine list is read
        # From now on /engines, /streams, /looping-streams and every event are answered with
        # JSON nested deeper than any parser follows.
        orchestrator.body = b"[" * 100_000
        url = await h.start()
        log = PlayerLog()
        await h.play(url, 61.0, log=log)
        assert set(log.statuses("playlist")) == {200}
        assert h.channel().switches.total == 0
        assert len(h.sim.sessions) == 1
        assert orchestrator.kinds() == ["stream_started"]  # booked, though answered garbage
        assert orchestrator.requests["/engines"] >= 7  # read at 0, 10, ..., 60 s
        assert orchestrator.requests["/streams"] >= 13  # read at 0, 5, ..., 60 s
        # A new channel still gets the engine the last good list named.
        assert (await h.open_playlist(CONTENT_B)).status_code == 200
    problems = sorted(
        (r.name, r.getMessage()) for r in caplog.records if r.levelno >= logging.WARNING
    )
    assert problems == [  # once each, not once per read
        (
            "trioproxy.channels.directory",
            "cannot read engines from the orchestrator: answered JSON nested too deeply",
        ),
        (
            "trioproxy.channels.watcher",
            "cannot read the orchestrator's streams: /looping-streams: answered JSON nested "
            "too deeply",
        ),
        (
            "trioproxy.channels.watcher",
            "cannot read the orchestrator's streams: /streams: answered JSON nested too deeply",
        ),
    ]
