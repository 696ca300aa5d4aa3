"""The loop-lag sampler records how late it wakes, and stops when its scope is cancelled."""

from __future__ import annotations

import trio
import trio.testing

from trioproxy.observability import sample_loop_lag
from trioproxy.observability.metrics import METRICS


def lag_count() -> float:
    value = METRICS.get_sample_value("trioproxy_event_loop_lag_seconds_count")
    assert value is not None
    return value


async def test_on_time_then_late(autojump_clock: trio.testing.MockClock) -> None:
    before = lag_count()
    async with trio.open_nursery() as nursery:
        scope: trio.CancelScope = await nursery.start(sample_loop_lag, 1.0)
        await trio.sleep(3.5)
        assert lag_count() - before == 3
        assert METRICS.get_sample_value("trioproxy_event_loop_lag_last_seconds") == 0.0
        # The loop is held 2.5 s by a synchronous step: the sampler wakes 2 s late, once.
        autojump_clock.jump(2.5)
        await trio.testing.wait_all_tasks_blocked()
        assert lag_count() - before == 4
        assert METRICS.get_sample_value("trioproxy_event_loop_lag_last_seconds") == 2.0
        await trio.sleep(1.5)  # it measures from when it woke: on time again at 7.0
        assert lag_count() - before == 5
        assert METRICS.get_sample_value("trioproxy_event_loop_lag_last_seconds") == 0.0
        scope.cancel()
    assert trio.current_time() == 7.5
