"""The fetch loop: every upstream segment, in order; a gap is always marked, exactly once."""

from __future__ import annotations

import itertools

import trio
import trio.testing

from trioproxy.channels.channel import Channel
from trioproxy.testing.engine import SimulatedEngine
from trioproxy.testing.harness import CONTENT_A, Harness, default_config, harness, small_media


async def watch(h: Harness, seconds: float) -> Channel:
    """Play CONTENT_A for ``seconds``, reloading like a player; return the channel."""
    url = await h.start(CONTENT_A)
    statuses = await h.play(url, until=trio.current_time() + seconds)
    assert set(statuses) == {200}
    channel = h.registry.get(CONTENT_A)
    assert channel is not None
    return channel


def upstream_sequences(channel: Channel) -> list[int | None]:
    return [segment.upstream_sequence for segment in channel.window]


async def test_downloads_slower_than_real_time_lose_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Each 2 s segment takes 3 s to download: only parallel downloads keep up.
    engine = SimulatedEngine(small_media(), durations=[2.0], list_size=5, segment_delay=3.0)
    config = default_config(hls_max_segments=60, hls_window_size=6)
    async with harness(config, engine) as h:
        channel = await watch(h, 90.0)
        (session,) = h.sim.sessions.values()
        produced = h.sim.produced(session, trio.current_time())
        fetched = upstream_sequences(channel)
        first = fetched[0]
        assert first is not None
        assert fetched == list(range(first, first + len(fetched)))  # in order, none skipped
        assert len(fetched) >= produced - first - 3  # keeping up, a few downloads in flight
        assert all(count == 1 for count in session.segment_requests.values())
        assert not any(segment.discontinuity for segment in channel.window)
        assert "#EXT-X-DISCONTINUITY" not in channel.render_playlist(lambda s: f"{s.sequence}.ts")


async def test_varying_durations_keep_their_extinf_and_a_valid_target(
    autojump_clock: trio.testing.MockClock,
) -> None:
    engine = SimulatedEngine(small_media(), durations=[2.5, 3.6, 1.2], backlog=10.0)
    async with harness(default_config(), engine) as h:
        channel = await watch(h, 20.0)
        text = channel.render_playlist(lambda s: f"{s.sequence}.ts")
        extinfs = [
            float(line[8:].rstrip(",")) for line in text.splitlines() if line.startswith("#EXTINF:")
        ]
        assert set(extinfs) == {2.5, 3.6, 1.2}
        target = int(
            next(
                line for line in text.splitlines() if line.startswith("#EXT-X-TARGETDURATION:")
            ).split(":")[1]
        )
        assert target == 4  # ≥ every EXTINF rounded to the nearest integer (3.6 → 4)


async def test_a_segment_dropped_before_we_saw_it_is_one_discontinuity(
    autojump_clock: trio.testing.MockClock,
) -> None:
    engine = SimulatedEngine(small_media(), durations=[2.0], backlog=4.0, hidden={6})
    async with harness(default_config(), engine) as h:
        channel = await watch(h, 20.0)
        fetched = upstream_sequences(channel)
        assert 6 not in fetched
        assert 5 in fetched
        assert 7 in fetched
        flagged = [s.upstream_sequence for s in channel.window if s.discontinuity]
        assert flagged == [7]
        assert channel.window.gaps == 1
        text = channel.render_playlist(lambda s: f"{s.sequence}.ts")
        assert text.count("#EXT-X-DISCONTINUITY\n") == 1


async def test_a_segment_that_cannot_be_downloaded_is_one_discontinuity(
    autojump_clock: trio.testing.MockClock,
) -> None:
    engine = SimulatedEngine(small_media(), durations=[2.0], backlog=4.0, missing={5})
    async with harness(default_config(), engine) as h:
        channel = await watch(h, 20.0)
        fetched = upstream_sequences(channel)
        assert 5 not in fetched
        assert [s.upstream_sequence for s in channel.window if s.discontinuity] == [6]
        assert channel.window.gaps == 1


async def test_a_segment_answered_empty_is_retried_then_one_discontinuity(
    autojump_clock: trio.testing.MockClock,
) -> None:
    engine = SimulatedEngine(small_media(), durations=[2.0], backlog=4.0, empty={5})
    async with harness(default_config(), engine) as h:
        channel = await watch(h, 20.0)
        (session,) = h.sim.sessions.values()
        assert session.segment_requests[5] == 3  # tried, then retried twice
        fetched = upstream_sequences(channel)
        assert 5 not in fetched
        assert 4 in fetched
        assert all(len(segment.data) == 1000 for segment in channel.window)
        assert [s.upstream_sequence for s in channel.window if s.discontinuity] == [6]
        assert channel.window.gaps == 1
        assert not channel.closed.is_set()


async def test_playlist_reloads_follow_the_target_duration(
    autojump_clock: trio.testing.MockClock,
) -> None:
    reloads: list[float] = []
    engine = SimulatedEngine(small_media(), durations=[4.0], backlog=8.0)
    original = engine.handle

    async def counting(path, query, scope):  # type: ignore[no-untyped-def]
        if path.startswith("/ace/m/"):
            reloads.append(trio.current_time())
        return await original(path, query, scope)

    engine.handle = counting  # type: ignore[method-assign]
    async with harness(default_config(), engine) as h:
        await watch(h, 30.0)
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(reloads)]
    # RFC 8216 §6.3.4: the target duration after a changed playlist, half of it after an
    # unchanged one; never faster.
    assert gaps
    assert set(gaps) <= {4.0, 2.0}
    assert len(reloads) <= 30 / 2 + 2


async def test_failing_playlist_backs_off_then_ends_the_channel(
    autojump_clock: trio.testing.MockClock,
) -> None:
    engine = SimulatedEngine(small_media(), durations=[2.0], backlog=6.0)
    original = engine.handle
    failing = False
    reloads: list[float] = []

    async def flaky(path, query, scope):  # type: ignore[no-untyped-def]
        if path.startswith("/ace/m/") and failing:
            reloads.append(trio.current_time())
            return 500, "text/plain", b"engine error"
        return await original(path, query, scope)

    engine.handle = flaky  # type: ignore[method-assign]
    # Without failover, on TRIOPROXY_UPSTREAM_TIMEOUT alone: the end once no switch is left.
    config = default_config(
        upstream_timeout=30.0,
        hls_client_idle_timeout=600.0,
        failover_max_switches=0,
        failover_playlist_targets=0.0,
    )
    async with harness(config, engine) as h:
        assert (await h.open_playlist(CONTENT_A)).status_code == 200
        channel = h.registry.get(CONTENT_A)
        assert channel is not None
        failing = True
        began = trio.current_time()
        await channel.closed.wait()
        # Bounded retries with growing, jittered pauses (never a busy loop), then a clean end.
        assert 30.0 <= trio.current_time() - began <= 40.0
        assert 5 <= len(reloads) <= 15
        pauses = [b - a for a, b in itertools.pairwise(reloads)]
        # Every pause is a backoff (at least 0.25 s), but the last: that retry starts at the
        # deadline, however close it was.
        assert min(pauses[:-1]) >= 0.25
        assert channel.end_reason is not None
        assert "playlist failing" in channel.end_reason
        assert h.orchestrator.kinds() == ["stream_started", "stream_ended"]
        assert h.orchestrator.events[1].payload["reason"] == channel.end_reason
        assert h.sim.open_sessions == []
        # Players are told, and the id is refused for a while rather than reopened at once.
        response = await h.client.get("/ace/getstream", params={"id": CONTENT_A})
        assert response.status_code == 502
        assert len(h.sim.sessions) == 1


async def test_segments_are_served_from_memory_with_their_length(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        playlist = await h.open_playlist(CONTENT_A)
        uris = [line for line in playlist.text.splitlines() if line and not line.startswith("#")]
        (session,) = h.sim.sessions.values()
        requested = dict(session.segment_requests)
        for uri in uris:
            response = await h.client.get(uri)
            assert response.status_code == 200
            assert response.headers["content-type"] == "video/mp2t"
            assert int(response.headers["content-length"]) == len(response.content) == 1000
            assert "immutable" in response.headers["cache-control"]
        assert session.segment_requests == requested  # served without asking the engine again
