"""Engine stops that hang or fail: the channel closes at its stop deadline all the same, the
registry tries again later at set times, every failure is logged and a final one is an error."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.lowlevel
import trio.testing

from tests.channels.test_session import SESSION, SlowUpstream, session_of
from trioproxy.channels.status import registry_status
from trioproxy.errors import EngineError
from trioproxy.testing.engine import SimulatedEngine
from trioproxy.testing.harness import CONTENT_A, default_config, harness, small_media
from trioproxy.upstream.engine import EngineClient, Session


class FailingStops(SlowUpstream):
    """Opens at once; its stops fail (``"fail"``), hang (``"hang"``) or work (``"ok"``) in turn."""

    def __init__(self, *outcomes: str) -> None:
        super().__init__(0.0)
        self.outcomes = list(outcomes)
        self.attempts: list[float] = []

    async def stop(self, client: EngineClient, session: Session) -> None:
        self.attempts.append(trio.current_time())
        outcome = self.outcomes.pop(0) if self.outcomes else "ok"
        if outcome == "hang":
            await trio.sleep_forever()
        await trio.lowlevel.checkpoint()
        if outcome == "fail":
            raise EngineError("stop answered HTTP 500")
        self.stopped.append((session, trio.current_time()))


async def run_and_stop(upstream: FailingStops) -> str | None:
    async with session_of(upstream) as session:
        with trio.move_on_after(1.0):
            async with trio.open_nursery() as nursery:
                await nursery.start(session.run)
        return session.left_open


async def test_a_failing_stop_is_logged_and_left_for_later(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    upstream = FailingStops("fail")
    assert await run_and_stop(upstream) == "stop answered HTTP 500"
    assert upstream.attempts == [1.0]
    assert trio.current_time() == 1.0  # the teardown does not wait to retry
    last = caplog.records[-1]
    assert last.levelno == logging.WARNING
    assert last.getMessage() == (
        "channel test: engine stop of session s1 on http://engine.test failed "
        "(stop answered HTTP 500); retrying later"
    )


async def test_a_stop_that_works_leaves_nothing_open(
    autojump_clock: trio.testing.MockClock,
) -> None:
    upstream = FailingStops("ok")
    assert await run_and_stop(upstream) is None
    assert upstream.stopped == [(SESSION, 1.0)]


async def test_a_hanging_stop_ends_at_the_stop_deadline(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    upstream = FailingStops("hang")
    assert await run_and_stop(upstream) == "timed out"
    assert upstream.attempts == [1.0]
    assert trio.current_time() == 1.0 + default_config().stop_timeout
    last = caplog.records[-1]
    assert last.levelno == logging.WARNING
    assert last.getMessage() == (
        "channel test: engine stop of session s1 on http://engine.test failed (timed out); "
        "retrying later"
    )


async def test_the_registry_retries_a_stop_the_channel_left_open_then_logs_an_error(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    engine = SimulatedEngine(small_media(), durations=[2.0], backlog=6.0, stop_delay=3600.0)
    async with harness(default_config(stop_timeout=4.0), engine=engine) as h:
        channel = await h.wait_channel()
        session_id = h.session_id()
        stopped_at = trio.current_time()
        h.registry.stop_channel(CONTENT_A)
        await channel.closed.wait()
        assert trio.current_time() == stopped_at + 4.0  # closed at its stop deadline
        await trio.testing.wait_all_tasks_blocked()
        assert registry_status(h.registry)["engine_stops_pending"] == 1
        # Later attempts 2, 10 and 30 s after the previous one ended, each bounded by 4 s.
        await trio.sleep_until(stopped_at + 4.0 + 2.0 + 4.0 + 10.0 + 4.0 + 30.0 + 4.0 - 0.1)
        assert registry_status(h.registry)["engine_stops_pending"] == 1
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        await trio.sleep(0.1)
        await trio.testing.wait_all_tasks_blocked()
        assert registry_status(h.registry)["engine_stops_pending"] == 0
        assert session_id in [s.session_id for s in h.sim.open_sessions]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        f"channel {CONTENT_A}: engine session {session_id} on {h.config.engines[0]} left open: "
        "3 later stop(s) failed (timed out)"
    ]


async def test_a_later_stop_that_works_is_logged_and_leaves_nothing_open(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trioproxy.channels.stops")
    engine = SimulatedEngine(small_media(), durations=[2.0], backlog=6.0, stop_delay=3600.0)
    async with harness(default_config(stop_timeout=4.0), engine=engine) as h:
        channel = await h.wait_channel()
        h.registry.stop_channel(CONTENT_A)
        await channel.closed.wait()
        engine.stop_delay = 0.0  # the engine answers again
        await trio.sleep(2.0 - 0.1)
        assert len(h.sim.open_sessions) == 1
        await trio.sleep(0.1)  # 2 s after the channel closed
        await trio.testing.wait_all_tasks_blocked()
        assert h.sim.open_sessions == []
        assert registry_status(h.registry)["engine_stops_pending"] == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("stopped on a later attempt" in r.getMessage() for r in caplog.records)
