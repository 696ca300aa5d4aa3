"""Engine faults: each gets a bounded retry, then a clean end (``stream_ended`` naming the cause),
502/503 for players, the engine session stopped, nothing left running and no busy loop.

Times are virtual (autojump clock) and backoff runs without jitter, so they are exact.

These are the faults of a channel without failover (``TRIOPROXY_FAILOVER_MAX_SWITCHES=0``, the
thresholds in seconds alone): what a channel does once its switches are used up, and what it did
before it could switch. Failover itself: ``test_failover.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from trioproxy.testing.harness import (
    CONTENT_A,
    CONTENT_B,
    Harness,
    channel_tasks,
    default_config,
    harness,
)

pytestmark = pytest.mark.usefixtures("no_jitter")

NO_FAILOVER: dict[str, Any] = {
    "failover_max_switches": 0,
    "failover_playlist_targets": 0.0,
    "failover_stall_targets": 0.0,
}


async def _open_ready(h: Harness, key: str = CONTENT_A) -> str:
    url = await h.start(key)
    response = await h.client.get(url)
    assert response.status_code == 200, response.text
    return url


async def _until_closed(h: Harness, url: str, key: str = CONTENT_A) -> list[int]:
    """A player keeps reloading every 2 s while the channel dies: what it was answered."""
    channel = h.channel(key)
    statuses = []
    while not channel.closed.is_set():
        statuses.append((await h.client.get(url)).status_code)
        with trio.move_on_after(2.0):
            await channel.closed.wait()
    return statuses


def _assert_clean_end(h: Harness, reason_part: str) -> None:
    reasons = h.ended_reasons()
    assert len(reasons) == 1, reasons
    assert reason_part in reasons[0], reasons
    assert h.orchestrator.kinds() == ["stream_started", "stream_ended"]
    assert h.sim.open_sessions == []  # the engine session was stopped (or ended by the engine)
    assert channel_tasks(h.registry) == []


# ---- opening a session --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("error", "engine refused the session: content not found"),
        ("non_json", "answered non-JSON"),
        ("refused", "unreachable"),
    ],
)
async def test_session_open_failure_is_a_502_and_backs_off(
    autojump_clock: trio.testing.MockClock, fault: str, message: str
) -> None:
    async with harness(default_config(**NO_FAILOVER)) as h:
        if fault == "error":
            h.sim.session_error = "content not found"
        elif fault == "non_json":
            h.engine.open_non_json = True
        else:
            h.engine_transport.refusing = True
        url = await h.start()
        response = await h.client.get(url)
        assert response.status_code == 502
        assert response.json()["error"] == "channel_failed"
        assert message in response.json()["message"]
        assert trio.current_time() == 0.0  # no waiting for a session that failed
        # Reloading players are refused for the failure backoff, without touching the engine.
        for _ in range(20):
            again = await h.client.get(url)
            assert again.status_code == 502
            assert again.headers["retry-after"] == "10"
        opens = h.engine.requests["open"] + h.engine_transport.refused
        assert opens == 1
        await trio.sleep(10.0)
        await h.client.get(url)  # after the backoff a new attempt is made: one more open
        assert h.engine.requests["open"] + h.engine_transport.refused == 2
        # Never established: no stream_started, so no stream_ended either.
        assert h.orchestrator.events == []
        assert channel_tasks(h.registry) == []


async def test_session_open_timeout(autojump_clock: trio.testing.MockClock) -> None:
    async with harness(default_config(**NO_FAILOVER, session_timeout=20.0)) as h:
        h.sim.open_delay = 1000.0
        url = await h.start()
        response = await h.client.get(url)
        assert trio.current_time() == 20.0
        assert response.status_code == 502
        assert "did not open a session in 20 s" in response.json()["message"]
        assert h.sim.sessions == {}  # the abandoned open created nothing on the engine
        assert h.orchestrator.events == []
        assert channel_tasks(h.registry) == []


# ---- a running stream ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "reason_part"),
    [
        ("playlist_5xx", "engine playlist failing"),
        ("playlist_garbage", "not an HLS playlist"),
    ],
)
async def test_playlist_failing_ends_channel_after_bounded_retries(
    autojump_clock: trio.testing.MockClock, fault: Any, reason_part: str
) -> None:
    async with harness(default_config(**NO_FAILOVER)) as h:
        url = await _open_ready(h)
        await trio.sleep(4.0)
        before = h.engine.requests["playlist"]
        h.engine.faults["*"] = fault
        failed_from = trio.current_time()
        statuses = await _until_closed(h, url)
        # The first failing reload comes within one target duration; then backoff 0.5, 1, 2,
        # 4, 8, 8, 8 s: the seventh retry is past TRIOPROXY_UPSTREAM_TIMEOUT (30 s).
        assert trio.current_time() - failed_from <= 2.0 + 31.5
        assert h.engine.requests["playlist"] - before == 8
        assert set(statuses) == {200}  # players were served from the buffer meanwhile
        _assert_clean_end(h, reason_part)
        after = await h.client.get(url)
        assert after.status_code == 502
        assert reason_part in after.json()["message"]


async def test_stalled_playlist_ends_channel(autojump_clock: trio.testing.MockClock) -> None:
    async with harness(default_config(**NO_FAILOVER, stall_timeout=40.0, stat_interval=5.0)) as h:
        url = await _open_ready(h)
        h.engine.faults[h.session_id()] = "stall"
        stalled_from = trio.current_time()
        before = h.engine.requests["playlist"]
        await _until_closed(h, url)
        elapsed = trio.current_time() - stalled_from
        assert 40.0 <= elapsed <= 40.0 + 5.0 + 2.0  # the stall bound, one check tick, one segment
        # An unchanged playlist is reloaded every half target duration: no busy loop.
        assert h.engine.requests["playlist"] - before <= elapsed / 1.0 + 1
        _assert_clean_end(h, "stalled: no new segment in 40 s")


async def test_engine_that_never_lists_a_segment(autojump_clock: trio.testing.MockClock) -> None:
    from trioproxy.testing.engine import SimulatedEngine
    from trioproxy.testing.harness import small_media

    engine = SimulatedEngine(small_media(), durations=[2.0], prebuffer=10_000.0)
    async with harness(default_config(**NO_FAILOVER, stall_timeout=60.0), engine=engine) as h:
        url = await h.start()
        first = await h.client.get(url)
        assert first.status_code == 503  # the buffer-ready timeout
        assert trio.current_time() == 30.0
        statuses = await _until_closed(h, url)
        assert trio.current_time() == 60.0
        assert set(statuses) <= {502, 503}
        # One reload a second while the engine lists nothing (the one due at 60 s races the end).
        assert h.engine.requests["playlist"] in (60, 61)
        _assert_clean_end(h, "stalled")


@pytest.mark.parametrize(
    ("fault", "reason_part"),
    [
        ("segment_404", "HTTP 404"),
        ("segment_5xx", "HTTP 500"),
        ("segment_truncated", "truncated"),
        ("segment_hang", "timed out"),
    ],
)
async def test_failing_segments_end_channel(
    autojump_clock: trio.testing.MockClock, fault: Any, reason_part: str
) -> None:
    async with harness(default_config(**NO_FAILOVER)) as h:
        url = await _open_ready(h)
        h.engine.faults[h.session_id()] = fault
        failing_from = trio.current_time()
        before = h.engine.requests["segment"]
        statuses = await _until_closed(h, url)
        assert 30.0 <= trio.current_time() - failing_from <= 36.0
        # At most three attempts per listed segment: one new segment every 2 s.
        assert h.engine.requests["segment"] - before <= 3 * 18
        assert set(statuses) <= {200, 502}
        _assert_clean_end(h, "engine segments failing: ")
        assert reason_part in h.ended_reasons()[0]


async def test_engine_disappearing_mid_stream(autojump_clock: trio.testing.MockClock) -> None:
    async with harness(default_config(**NO_FAILOVER)) as h:
        url = await _open_ready(h)
        await trio.sleep(4.0)
        h.engine_transport.refusing = True
        gone_at = trio.current_time()
        await _until_closed(h, url)
        assert trio.current_time() - gone_at <= 2.0 + 31.5
        reasons = h.ended_reasons()
        assert len(reasons) == 1
        assert "ConnectError" in reasons[0]
        # The stop could not reach the engine: tried once, bounded; stream_ended still sent.
        assert h.orchestrator.kinds() == ["stream_started", "stream_ended"]
        assert channel_tasks(h.registry) == []
        # Connection attempts while it was gone: bounded retries, no busy loop.
        assert h.engine_transport.refused <= 20


async def test_session_ended_by_the_engine(autojump_clock: trio.testing.MockClock) -> None:
    async with harness(default_config(**NO_FAILOVER, stat_interval=5.0)) as h:
        url = await _open_ready(h)
        h.engine.end_session(h.session_id())
        ended_at = trio.current_time()
        await _until_closed(h, url)
        assert trio.current_time() - ended_at <= 5.0  # the next stat_url check notices
        _assert_clean_end(h, "engine ended the session (unknown playback session id)")


async def test_one_failing_channel_does_not_disturb_another(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness(default_config(**NO_FAILOVER)) as h:
        url_a = await _open_ready(h, CONTENT_A)
        url_b = await _open_ready(h, CONTENT_B)
        h.engine.faults[h.session_id(CONTENT_A)] = "playlist_garbage"
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_until_closed, h, url_a, CONTENT_A)
            statuses_b = await h.play(url_b, until=trio.current_time() + 60.0)
        assert set(statuses_b) == {200}
        assert h.registry.get(CONTENT_A) is None
        assert h.channel(CONTENT_B).state.value == "ready"


async def test_health_checks_are_paced(autojump_clock: trio.testing.MockClock) -> None:
    """A healthy channel costs the engine one stat_url read per interval, nothing more."""
    async with harness(default_config(**NO_FAILOVER, stat_interval=5.0)) as h:
        url = await _open_ready(h)
        opened_at = trio.current_time()
        await h.play(url, until=opened_at + 61.0)
        assert h.engine.requests["stat"] == 12  # at 5, 10, ..., 60 s after the session opened
        assert h.channel().state.value == "ready"


async def test_hanging_playlist_ends_channel(autojump_clock: trio.testing.MockClock) -> None:
    async with harness(default_config(**NO_FAILOVER)) as h:
        url = await _open_ready(h)
        h.engine.faults[h.session_id()] = "playlist_hang"
        hung_from = trio.current_time()
        before = h.engine.requests["playlist"]
        statuses = await _until_closed(h, url)
        # Each reload gives up after 10 s, then backs off: the channel ends past 30 s of failing.
        assert 30.0 <= trio.current_time() - hung_from <= 2.0 + 30.0 + 10.0 + 8.0
        assert h.engine.requests["playlist"] - before <= 5
        assert set(statuses) == {200}
        _assert_clean_end(h, "engine playlist failing: timed out")


async def test_stat_reads_keep_their_own_pace(autojump_clock: trio.testing.MockClock) -> None:
    """A stall check more often than stat reads does not read stat_url more often."""
    config = default_config(**NO_FAILOVER, stat_interval=30.0, stall_timeout=10.0)
    async with harness(config) as h:
        url = await _open_ready(h)
        opened_at = trio.current_time()
        await h.play(url, until=opened_at + 61.0)
        assert h.engine.requests["stat"] == 2  # at 30 and 60 s
