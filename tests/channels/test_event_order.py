"""Events in order per content: a stopped channel's ``stream_ended`` reaches the orchestrator before
the ``stream_started`` of the next channel of the same content, which v2 keys by that content.
Players never wait for it; an orchestrator that is down holds the new start no longer than the
old end's deadline."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from trioproxy.channels.status import registry_status
from trioproxy.testing.harness import CONTENT_A, Harness, default_config, harness
from trioproxy.testing.orchestrator import FakeOrchestrator, V2Wire

pytestmark = pytest.mark.usefixtures("no_jitter")

ENGINES = [
    {"container_id": "c1", "host": "engine.test", "port": 6878, "health_status": "healthy"},
]


def v2(**knobs: Any) -> FakeOrchestrator:
    """A v2 orchestrator (port 8083) listing the harness's engine as container ``c1``."""
    return FakeOrchestrator(engines=ENGINES, wire=V2Wire(), **knobs)


def session_of(payload: Any) -> str:
    return str(payload["session"]["playback_session_id"])


async def restart(h: Harness) -> tuple[str, str]:
    """Stop the channel of CONTENT_A and at once ask for it again: both engine sessions."""
    old = h.session_id()
    assert h.registry.stop_channel(CONTENT_A)
    assert (await h.open_playlist(CONTENT_A)).status_code == 200
    return old, h.session_id()


async def test_a_restart_waits_for_the_slow_end_and_leaves_one_stream(
    autojump_clock: trio.testing.MockClock,
) -> None:
    orchestrator = v2(delay=3.0)  # every event takes 3 s to be accepted
    async with harness(default_config(engines=()), orchestrator=orchestrator) as h:
        await trio.sleep(1.0)  # the engine list is read
        assert (await h.open_playlist(CONTENT_A)).status_code == 200
        assert trio.current_time() == 1.0
        await trio.sleep(1.0)
        old, new = await restart(h)
        assert trio.current_time() == 2.0  # the new channel's player did not wait
        await trio.sleep(10.0)
        assert [(e.kind, e.arrived, e.at) for e in orchestrator.events] == [
            ("stream_started", 1.0, 4.0),
            ("stream_ended", 4.0, 7.0),  # behind its own start, still in flight at 2 s
            ("stream_started", 7.0, 10.0),  # held until the end before it was accepted
        ]
        assert [session_of(e.payload) for e in orchestrator.events if "session" in e.payload] == [
            old,
            new,
        ]
        assert list(orchestrator.running) == [CONTENT_A]
        assert orchestrator.running[CONTENT_A].playback_session_id == new
        assert orchestrator.load == {"c1": 1}
        assert orchestrator.overwritten == []
        assert orchestrator.refused == []
        h.registry.stop_channel(CONTENT_A)
        await trio.sleep(5.0)
        assert orchestrator.running == {}
        assert orchestrator.load == {"c1": 0}


async def test_restarts_in_a_row_keep_the_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    orchestrator = v2(delay=2.0)
    # No players: the last channel must outlive the wait. Closing channels hold engine slots.
    config = default_config(engines=(), proxy_grace_period=600.0, max_streams_per_engine=8)
    async with harness(config, orchestrator=orchestrator) as h:
        await trio.sleep(1.0)
        assert (await h.open_playlist(CONTENT_A)).status_code == 200
        sessions = [h.session_id()]
        for _ in range(3):
            await trio.sleep(0.5)
            sessions.append((await restart(h))[1])
        await trio.sleep(30.0)
        # The two channels in between ended while their start was held: neither of their
        # events is owed, and the last start waits only for the first end.
        assert [(e.kind, e.arrived) for e in orchestrator.events] == [
            ("stream_started", 1.0),
            ("stream_ended", 3.0),
            ("stream_started", 5.0),
        ]
        starts = [e for e in orchestrator.events if e.kind == "stream_started"]
        assert [session_of(e.payload) for e in starts] == [sessions[0], sessions[-1]]
        assert list(orchestrator.running) == [CONTENT_A]
        assert orchestrator.running[CONTENT_A].playback_session_id == sessions[-1]
        assert orchestrator.load == {"c1": 1}
        assert orchestrator.refused == []


async def test_a_down_orchestrator_holds_the_new_start_only_until_the_old_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    orchestrator = v2(status=503)
    config = default_config(engines=(), event_drain_timeout=20.0, hls_client_idle_timeout=600.0)
    async with harness(config, orchestrator=orchestrator) as h:
        await trio.sleep(1.0)
        assert (await h.open_playlist(CONTENT_A)).status_code == 200
        await trio.sleep(4.0)
        old, new = await restart(h)
        assert trio.current_time() == 5.0
        await trio.sleep(21.0)  # the old sender gives up at 5 + 20 s
        tries = [(r.at, session_of(r.payload)) for r in orchestrator.refused if r.payload]
        old_tries = [at for at, session in tries if session == old]
        new_tries = [at for at, session in tries if session == new]
        assert old_tries == [1.0, 1.5, 2.5, 4.5, 8.5, 16.5]  # backing off, then its deadline
        assert new_tries[0] == 25.0  # held until the old end was given up, and not longer
        orchestrator.status = 200  # back
        await trio.sleep(30.0)
        assert [(e.kind, session_of(e.payload)) for e in orchestrator.events] == [
            ("stream_started", new),
        ]
        assert list(orchestrator.running) == [CONTENT_A]
        assert orchestrator.load == {"c1": 1}
        assert registry_status(h.registry)["events"]["dropped"] == 2  # the old start and its end
