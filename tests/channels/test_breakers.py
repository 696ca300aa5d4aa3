"""Breakers are for engines, not for content: two engines (A first, B second), virtual clock.

Dead content (an id the engine refuses to open, a torrent that never brings a segment while the
engine answers for it) costs at most two engine sessions, opens no engine's breaker, and is then
refused for ``TRIOPROXY_FAILURE_BACKOFF``; an engine that really fails still has somewhere to go.
"""

from __future__ import annotations

import trio
import trio.testing

from trioproxy.testing.faults import DEAD_ERROR
from trioproxy.testing.harness import CONTENT_A, CONTENT_B, ENGINE_URL

from .test_failover import ENGINE_B, STALL_DEADLINE, Two, _switched, two_engines

REFUSED = "d" * 40
"""Both engines refuse to open a session for it."""
SILENT = "e" * 40
"""Both engines open it, and it never brings a segment (prebuf, no peers)."""
MIXED = "f" * 40
"""Engine A refuses it; on B it never brings a segment."""
STALL_TIMEOUT = 60.0  # TRIOPROXY_STALL_TIMEOUT: before a session's first segment
STAT_TIMEOUT = 5.0  # one stat_url read at most


def _breakers(t: Two) -> dict[str, float | None]:
    return {e["url"]: e["breaker_open_seconds"] for e in t.h.registry.directory.snapshot()}


async def test_dead_ids_open_no_breaker_and_a_dead_engine_still_fails_over(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with two_engines(watch=True) as t:
        for engine in (t.a, t.b):
            engine.faulty.dead.update({REFUSED: "refused", SILENT: "silent"})
        t.a.faulty.dead[MIXED] = "refused"
        t.b.faulty.dead[MIXED] = "silent"
        dead = {
            key: t.h.registry.get_or_start("content_id", key) for key in (REFUSED, SILENT, MIXED)
        }
        for channel in dead.values():
            await channel.closed.wait()
        # Each dead id: one session on each engine, then the end; no engine is blamed.
        for key, channel in dead.items():
            assert {s.engine for s in channel.sessions} == {ENGINE_URL, ENGINE_B}, key
            assert "after 2 engine sessions" in (channel.end_reason or ""), key
            assert channel.failure is not None
        assert f"engine refused the session: {DEAD_ERROR}" in (dead[REFUSED].end_reason or "")
        assert "status prebuf, peers 0" in (dead[SILENT].end_reason or "")
        # The silent one was given up on each engine at its stall deadline.
        assert [s.ended_at for s in dead[SILENT].sessions] == [STALL_TIMEOUT, 2 * STALL_TIMEOUT]
        assert trio.current_time() == 2 * STALL_TIMEOUT
        assert _breakers(t) == {ENGINE_URL: None, ENGINE_B: None}
        assert t.a.faulty.inner.open_sessions == t.b.faulty.inner.open_sessions == []
        # Asked for again at once: refused by the failure backoff, no engine asked.
        opens = len(t.a.times("open")) + len(t.b.times("open"))
        response = await t.h.client.get("/ace/getstream", params={"id": SILENT})
        assert response.status_code == 502
        assert response.json()["error"] == "channel_failed"
        assert len(t.a.times("open")) + len(t.b.times("open")) == opens

        # Then engine A dies under a channel that plays: B takes it at once.
        channel = await t.h.wait_channel(CONTENT_A)
        assert channel.engine.base_url == ENGINE_URL
        await trio.sleep(3.0)
        t.a_transport.refusing = True
        killed_at = trio.current_time()
        assert await _switched(channel) == killed_at
        assert channel.engine.base_url == ENGINE_B
        assert t.b.times("open")[-1] == killed_at
        assert _breakers(t)[ENGINE_URL] is not None  # the engine failed: its breaker opens
        assert _breakers(t)[ENGINE_B] is None


async def test_an_id_one_engine_refuses_plays_from_the_other_and_blames_no_engine(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with two_engines() as t:
        t.a.faulty.dead[CONTENT_A] = "refused"
        response = await t.h.open_playlist(CONTENT_A)
        assert response.status_code == 200
        channel = t.h.channel(CONTENT_A)
        assert [s.engine for s in channel.sessions] == [ENGINE_URL, ENGINE_B]
        assert t.b.times("open") == [0.0]
        # A keeps taking channels: the least loaded engine gets the next one, as before.
        other = await t.h.wait_channel(CONTENT_B)
        assert other.engine.base_url == ENGINE_URL
        assert _breakers(t) == {ENGINE_URL: None, ENGINE_B: None}


async def test_a_stall_the_engine_explains_moves_on_without_a_breaker(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with two_engines() as t:
        channel = await t.h.wait_channel()
        await trio.sleep(3.0)
        t.a.faulty.faults["*"] = "stall"  # the playlist stops moving; stat still answers
        switched_at = await _switched(channel)
        last_segment = max(at for at in t.a.times("segment") if at < switched_at)
        assert switched_at == last_segment + STALL_DEADLINE
        assert t.a.times("stat")[-1] == switched_at  # asked why at the deadline
        assert _breakers(t)[ENGINE_URL] is None


async def test_a_stall_on_an_engine_that_does_not_answer_opens_its_breaker(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with two_engines() as t:
        channel = await t.h.wait_channel()
        await trio.sleep(3.0)
        t.a.faulty.faults["*"] = "stall"
        t.a.hang.add("stat")  # the engine answers nothing more about the session
        switched_at = await _switched(channel)
        last_segment = max(at for at in t.a.times("segment") if at < switched_at)
        assert switched_at == last_segment + STALL_DEADLINE + STAT_TIMEOUT
        assert "does not answer" in (channel.sessions[0].reason or "")
        assert _breakers(t)[ENGINE_URL] is not None


async def test_content_failing_after_an_engine_failure_ends_at_the_second_refusal(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with two_engines(failover_max_switches=5, failover_window=300.0) as t:
        channel = await t.h.wait_channel()
        t.a_transport.refusing = True  # A dies: its breaker opens
        t.b.faulty.inner.session_error = "content not found"  # B has nothing for the id
        await channel.closed.wait()
        # A, then B; B once more (the channel played, no other engine): then the end.
        assert [s.engine for s in channel.sessions] == [ENGINE_URL, ENGINE_B, ENGINE_B]
        assert channel.switches.total == 2
        assert "content not found" in (channel.end_reason or "")
        assert _breakers(t)[ENGINE_B] is None
        assert t.h.registry.get(CONTENT_A) is None
