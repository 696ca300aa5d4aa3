"""Events reach the orchestrator in order, survive its outages, and never name unknown streams."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

from trioproxy.channels.status import registry_status
from trioproxy.testing.harness import CONTENT_A, CONTENT_B, default_config, harness
from trioproxy.testing.orchestrator import FakeOrchestrator


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
