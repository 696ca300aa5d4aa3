"""Events reach the orchestrator in order, survive its outages, and never name unknown streams."""

from __future__ import annotations

import logging

import httpx
import pytest
import trio
import trio.testing

from trioproxy.channels.status import registry_status
from trioproxy.testing.engine import SimulatedEngine
from trioproxy.testing.faults import FaultyEngine
from trioproxy.testing.harness import (
    CONTENT_A,
    CONTENT_B,
    ENGINE_URL,
    RefusingTransport,
    asgi_transport,
    default_config,
    harness,
    small_media,
)
from trioproxy.testing.orchestrator import FakeOrchestrator
from trioproxy.upstream.orchestrator import Event

ENGINE_B = "http://engine-b.test:6878"


async def test_orchestrator_down_for_a_minute_loses_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h, trio.open_nursery() as players:
        h.orchestrator_transport.refusing = True
        assert (await h.open_playlist(CONTENT_A)).status_code == 200
        players.start_soon(h.watch, CONTENT_B)
        await trio.sleep(1)
        a, b = h.registry.channels
        await trio.sleep(20)
        h.registry.stop_channel(CONTENT_A, "stopped by request")
        await trio.sleep(40)
        assert h.orchestrator.events == []
        assert h.orchestrator_transport.refused > 0
        h.orchestrator_transport.refusing = False  # back after a minute
        await trio.sleep(30)
        players.cancel_scope.cancel()
        by_stream: dict[str, list[str]] = {}
        for event in h.orchestrator.events:
            stream = event.payload.get("stream_id") or event.payload["labels"]["stream_id"]
            by_stream.setdefault(stream, []).append(event.kind)
        assert by_stream == {
            a.stream_id: ["stream_started", "stream_ended"],
            b.stream_id: ["stream_started"],
        }
        assert registry_status(h.registry)["events"]["dropped"] == 0


async def test_started_payload_matches_the_contract(autojump_clock: trio.testing.MockClock) -> None:
    async with harness(default_config(api_key="k3y")) as h:
        h.orchestrator.api_key = "k3y"
        assert (await h.open_playlist(CONTENT_A)).status_code == 200
        await trio.sleep(1)
        (started,) = h.orchestrator.events
        channel = h.registry.get(CONTENT_A)
        assert channel is not None
        assert channel.session is not None
        assert started.payload == {
            "container_id": None,
            "engine": {"host": "engine.test", "port": 6878},
            "stream": {"key_type": "content_id", "key": CONTENT_A},
            "session": {
                "playback_session_id": channel.session.playback_session_id,
                "stat_url": channel.session.stat_url,
                "command_url": channel.session.command_url,
                "is_live": 1,
            },
            "labels": {
                "source": "trioproxy",
                "stream_mode": "HLS",
                "stream_id": f"{CONTENT_A}|{channel.session.playback_session_id}",
            },
            # What v2 keys the stream by and counts engine load by; v1 ignores both.
            "content_id": CONTENT_A,
            "engine_id": None,
        }


@pytest.mark.parametrize(("our_key", "status"), [(None, 401), ("Kq-ours-8812", 403)])
async def test_rejected_key_is_one_clear_error_and_nothing_else(
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    our_key: str | None,
    status: int,
) -> None:
    orchestrator = FakeOrchestrator(api_key="Kq-theirs-7731")
    async with harness(default_config(api_key=our_key), orchestrator=orchestrator) as h:
        for key in (CONTENT_A, CONTENT_B):
            assert (await h.open_playlist(key)).status_code == 200
            h.registry.stop_channel(key)
        for channel in h.registry.closing:
            await channel.closed.wait()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "API_KEY" in errors[0].getMessage()
    assert str(status) in errors[0].getMessage()
    assert "Kq-" not in caplog.text  # never log a key
    # stream_started was refused, so stream_ended is never sent: it would end another stream.
    assert orchestrator.attempts == 2


async def test_orchestrator_errors_are_retried_with_backoff(
    autojump_clock: trio.testing.MockClock,
) -> None:
    orchestrator = FakeOrchestrator(status=503)
    config = default_config(hls_client_idle_timeout=600.0)
    async with harness(config, orchestrator=orchestrator) as h:
        assert (await h.open_playlist(CONTENT_A)).status_code == 200
        await trio.sleep(60)
        attempts = orchestrator.attempts
        assert 4 <= attempts <= 14  # backing off, capped at 15 s between tries: never a busy loop
        orchestrator.status = 200
        await trio.sleep(16)
        assert orchestrator.kinds() == ["stream_started"]


async def test_no_orchestrator_means_no_events_and_no_errors(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with harness(default_config(orchestrator_url=None)) as h:
        assert (await h.open_playlist(CONTENT_A)).status_code == 200
        h.registry.stop_channel(CONTENT_A)
        await trio.sleep(5)
        assert h.orchestrator.attempts == 0
        assert h.sim.open_sessions == []
        assert registry_status(h.registry)["events"] is None
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_an_error_in_the_event_sender_ends_that_sender_only(
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with harness(default_config(hls_client_idle_timeout=600.0)) as h:
        assert h.registry.orchestrator is not None

        async def broken(event: Event) -> int:
            raise RuntimeError("a bug in posting")

        monkeypatch.setattr(h.registry.orchestrator, "post_event", broken)
        assert (await h.open_playlist(CONTENT_A)).status_code == 200
        await trio.sleep(30.0)
        channel = h.channel(CONTENT_A)
        assert channel.events_settled.is_set()
        assert channel.events_snapshot() == {"pending": 0, "delivered": 0, "dropped": 1}
        # The channel and the proxy live on: it still plays, and another channel starts.
        assert (await h.client.get(await h.start(CONTENT_A))).status_code == 200
        assert (await h.open_playlist(CONTENT_B)).status_code == 200
        assert h.channel(CONTENT_A).session is not None
        assert len(h.sim.sessions) == 2
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        f"channel {CONTENT_A}: the event sender failed",
        f"channel {CONTENT_B}: the event sender failed",
    ]


async def test_a_channel_flapping_while_the_orchestrator_is_down_owes_only_real_events(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    engines = {
        url: RefusingTransport(
            asgi_transport(FaultyEngine(SimulatedEngine(small_media(), durations=[2.0])))
        )
        for url in (ENGINE_URL, ENGINE_B)
    }
    # Two switches per 30 s: the event queue holds 2 * (2 + 2) = 8 events.
    config = default_config(
        engines=(ENGINE_URL, ENGINE_B),
        proxy_grace_period=3600.0,
        failover_max_switches=2,
        failover_window=30.0,
        failover_cooldown=0.0,
    )
    mounts: dict[str, httpx.AsyncBaseTransport] = dict(engines)
    async with harness(config, mounts=mounts) as h:
        h.orchestrator_transport.refusing = True
        channel = await h.wait_channel()
        first = channel.stream_id
        for switch in range(1, 11):  # one every 20 s: 11 engine sessions, 22 events
            await trio.sleep(20.0)
            engine = engines[channel.engine.base_url]
            engine.refusing = True
            while channel.switches.total < switch:  # noqa: ASYNC110 (polls plain data)
                await trio.sleep(0.5)
            engine.refusing = False
        await trio.sleep(10.0)
        last = channel.stream_id
        assert channel.sessions[-1].ended_at is None
        assert h.orchestrator.events == []
        h.orchestrator_transport.refusing = False  # back
        await trio.sleep(20.0)
        h.registry.stop_channel(CONTENT_A)
        await channel.closed.wait()
    orchestrator = h.orchestrator
    assert [(e.kind, stream_of(e.payload)) for e in orchestrator.events] == [
        ("stream_started", first),
        ("stream_ended", first),  # its stream_started was being posted: both are owed
        ("stream_started", last),
        ("stream_ended", last),
    ]
    assert orchestrator.ended_unknown == []
    assert orchestrator.running == {}
    assert channel.events_snapshot() == {"pending": 0, "delivered": 4, "dropped": 0}
    said = caplog.text
    assert "lost" not in said
    assert "not delivered" not in said.replace("not delivered (", "")  # retries are fine
    assert "not sent: its stream_started failed" not in said


def stream_of(payload: dict[str, object]) -> object:
    labels = payload.get("labels")
    return labels.get("stream_id") if isinstance(labels, dict) else payload.get("stream_id")
