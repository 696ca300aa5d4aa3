"""Fetch planning as plain functions: what one reload brings, and when to reload next."""

from __future__ import annotations

from trioproxy.hls.plan import EMPTY_RELOAD_INTERVAL, FetchPlan, plan_fetches, reload_pause
from trioproxy.hls.playlist import UpstreamPlaylist, UpstreamSegment


def segment(sequence: int, *, discontinuity: bool = False, number: int = 0) -> UpstreamSegment:
    return UpstreamSegment(
        sequence=sequence,
        uri=f"http://engine/{sequence}.ts",
        duration=2.0,
        discontinuity=discontinuity,
        discontinuity_number=number,
    )


def playlist(
    *segments: UpstreamSegment, endlist: bool = False, target: float | None = 2.0
) -> UpstreamPlaylist:
    return UpstreamPlaylist(
        media_sequence=segments[0].sequence if segments else 0,
        target_duration=target,
        segments=segments,
        endlist=endlist,
    )


def listing(first: int, last: int, *, endlist: bool = False) -> UpstreamPlaylist:
    return playlist(*(segment(n) for n in range(first, last + 1)), endlist=endlist)


def plan(
    upstream: UpstreamPlaylist,
    last: int | None = None,
    last_discontinuity: int | None = None,
    *,
    initial: int = 3,
    vod_cap: int = 100,
) -> FetchPlan:
    return plan_fetches(
        upstream, last, last_discontinuity, initial_segments=initial, vod_cap=vod_cap
    )


def sequences(result: FetchPlan) -> list[int]:
    return [fetch.segment.sequence for fetch in result.fetches]


def marked(result: FetchPlan) -> list[int]:
    return [fetch.segment.sequence for fetch in result.fetches if fetch.discontinuity_before]


def test_a_live_playlist_starts_at_its_live_edge() -> None:
    result = plan(listing(10, 19), initial=3)
    assert sequences(result) == [17, 18, 19]
    assert marked(result) == []
    assert result.dropped is None
    assert result.restarted_at is None
    assert result.last_sequence == 19


def test_the_live_edge_is_at_least_one_segment() -> None:
    assert sequences(plan(listing(10, 19), initial=0)) == [19]


def test_finished_content_is_taken_from_its_start_up_to_the_cap() -> None:
    assert sequences(plan(listing(0, 9, endlist=True), vod_cap=100)) == list(range(10))
    assert sequences(plan(listing(0, 9, endlist=True), vod_cap=4)) == [0, 1, 2, 3]


def test_later_reloads_bring_only_what_is_new() -> None:
    result = plan(listing(12, 21), last=19)
    assert sequences(result) == [20, 21]
    assert marked(result) == []
    assert plan(listing(12, 19), last=19).fetches == ()


def test_segments_dropped_before_we_saw_them_are_a_gap() -> None:
    result = plan(listing(25, 30), last=19)
    assert sequences(result) == [25, 26, 27, 28, 29, 30]
    assert result.dropped == (20, 24)
    assert marked(result) == [25]


def test_a_media_sequence_that_went_back_is_a_restart_at_the_live_edge() -> None:
    result = plan(listing(0, 5), last=40, initial=2)
    assert result.restarted_at == 5
    assert sequences(result) == [4, 5]
    assert marked(result) == [4]


def test_a_discontinuity_listed_only_on_a_segment_we_never_saw_still_counts() -> None:
    # Segment 20 (never fetched) carried the discontinuity; 21 only shows the number moved on.
    upstream = playlist(segment(21, number=1), segment(22, number=1))
    result = plan(upstream, last=20, last_discontinuity=0)
    assert marked(result) == [21]
    assert result.last_discontinuity == 1


def test_a_discontinuity_the_segment_carries_itself_is_not_added_again() -> None:
    upstream = playlist(segment(20, discontinuity=True, number=1), segment(21, number=1))
    result = plan(upstream, last=19, last_discontinuity=0)
    assert marked(result) == []
    assert [f.segment.discontinuity for f in result.fetches] == [True, False]


def test_an_empty_playlist_plans_nothing() -> None:
    result = plan(playlist(), last=5)
    assert result.fetches == ()
    assert result.last_sequence is None
    assert result.last_discontinuity is None


def test_reload_pace_follows_rfc_8216() -> None:
    changed = listing(10, 12)
    assert reload_pause(changed, previous_last=None) == 2.0  # the first reload counts as changed
    assert reload_pause(changed, previous_last=11) == 2.0
    assert reload_pause(changed, previous_last=12) == 1.0  # unchanged: half the target duration
    assert reload_pause(playlist(), previous_last=12) == EMPTY_RELOAD_INTERVAL
    assert reload_pause(playlist(segment(1), target=None), previous_last=None) == 1.0
    assert EMPTY_RELOAD_INTERVAL == 1.0
