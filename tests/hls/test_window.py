"""The segment window and the playlist rendered from it (pure functions)."""

from __future__ import annotations

import pytest

from trioproxy.hls.playlist import PlaylistError, parse_media_playlist, render_media_playlist
from trioproxy.hls.window import MAX_PACE, SegmentWindow


def render(window: SegmentWindow, size: int = 3) -> str:
    return render_media_playlist(
        window.latest(size),
        target_duration=window.target_duration,
        segment_uri=lambda s: f"{s.sequence}.ts",
    )


def test_window_keeps_the_newest_and_counts_bytes() -> None:
    window = SegmentWindow(3)
    for n in range(5):
        window.append(bytes(10 * (n + 1)), 2.0)
    assert [s.sequence for s in window] == [2, 3, 4]
    assert window.total_bytes == 30 + 40 + 50
    assert window.get(1) is None
    assert window.get(4) is not None
    assert window.get(5) is None


def test_target_duration_covers_rounded_extinf_and_never_shrinks() -> None:
    window = SegmentWindow(10)
    window.append(b"x", 4.4)
    window.append(b"x", 4.5)  # rounds to 5
    for _ in range(5):
        window.append(b"x", 2.0)
    text = render(window)
    assert "#EXT-X-TARGETDURATION:5\n" in text  # the 4.5 s segment has left the playlist
    assert "#EXTINF:2.000,\n" in text


def test_timers_pace_on_the_segments_durations_bounded_not_on_a_declared_target() -> None:
    window = SegmentWindow(10)
    window.raise_target_duration(3600)  # an upstream's placeholder playlist
    window.append(b"x", 2.0)
    assert (window.target_duration, window.pace) == (3600, 2)
    window.append(b"x", 6.4)
    assert window.pace == 6
    window.append(b"x", 3600.0)  # a segment that claims an hour
    assert (window.target_duration, window.pace) == (3600, MAX_PACE)


def test_discontinuity_sequence_counts_tags_that_left_the_playlist() -> None:
    window = SegmentWindow(10)
    window.append(b"x", 2.0)
    window.mark_gap()
    window.append(b"x", 2.0)  # 1: after a gap
    window.append(b"x", 2.0, discontinuity=True)  # 2: upstream discontinuity
    window.append(b"x", 2.0)  # 3
    window.append(b"x", 2.0)  # 4
    assert render(window, 5).count("#EXT-X-DISCONTINUITY\n") == 2
    assert "DISCONTINUITY-SEQUENCE" not in render(window, 5)
    text = render(window, 3)  # 2, 3, 4: the tag on 1 left, the one on 2 is still listed
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:1\n" in text
    assert text.count("#EXT-X-DISCONTINUITY\n") == 1
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:2\n" in render(window, 2)


def test_a_gap_before_the_first_segment_marks_nothing() -> None:
    window = SegmentWindow(5)
    window.mark_gap()
    first = window.append(b"x", 2.0)
    assert not first.discontinuity


def test_parse_resolves_uris_against_the_final_url() -> None:
    text = (
        "\ufeff#EXTM3U\r\n#EXT-X-TARGETDURATION:4\r\n#EXT-X-MEDIA-SEQUENCE:7\r\n"
        "#EXTINF:3.5,\r\nseg7.ts\r\n#EXT-X-DISCONTINUITY\r\n#EXTINF:4,\r\n/abs/seg8.ts\r\n"
        "#EXTINF:2.0,\r\nhttp://other:6878/ace/c/x/9.ts\r\n"
    )
    playlist = parse_media_playlist(text, "http://engine:6878/ace/m/x/s.m3u8")
    assert [s.sequence for s in playlist.segments] == [7, 8, 9]
    assert [s.uri for s in playlist.segments] == [
        "http://engine:6878/ace/m/x/seg7.ts",
        "http://engine:6878/abs/seg8.ts",
        "http://other:6878/ace/c/x/9.ts",
    ]
    assert [s.discontinuity for s in playlist.segments] == [False, True, False]
    assert playlist.target_duration == 4


@pytest.mark.parametrize(
    "text",
    [
        "",
        "<html>502 Bad Gateway</html>",
        "garbage\n#EXTINF:2,\nx.ts",
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n",
    ],
)
def test_what_is_not_a_media_playlist_is_refused(text: str) -> None:
    with pytest.raises(PlaylistError):
        parse_media_playlist(text, "http://engine/x.m3u8")
