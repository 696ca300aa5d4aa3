"""The loop-lag sampler: how late a task that asked to wake up at a time actually runs.

It sleeps until a deadline every :data:`LAG_INTERVAL` seconds and records how late it woke
(``trioproxy_event_loop_lag_seconds``). A loop kept busy (a long synchronous step, a flood of
requests) shows as lag: every ready task waits that long.
"""

from __future__ import annotations

import trio

from .metrics import LOOP_LAG, LOOP_LAG_LAST

__all__ = ["LAG_INTERVAL", "sample_loop_lag"]

LAG_INTERVAL = 1.0


async def sample_loop_lag(
    interval: float = LAG_INTERVAL,
    *,
    task_status: trio.TaskStatus[trio.CancelScope] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Sample until the scope given to ``task_status.started`` is cancelled."""
    with trio.CancelScope() as scope:
        task_status.started(scope)
        wake_at = trio.current_time()
        while True:
            wake_at += interval
            await trio.sleep_until(wake_at)
            lag = trio.current_time() - wake_at
            LOOP_LAG.observe(lag)
            LOOP_LAG_LAST.set(lag)
            if lag > interval:  # a loop that stalled: measure from now on, don't catch up
                wake_at = trio.current_time()
