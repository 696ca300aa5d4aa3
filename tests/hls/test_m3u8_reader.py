"""What the playlist readers add to the m3u8 library's model, one rule at a time (pure functions).

m3u8 reads the playlists; these are the places where what it gives is not what a proxy needs:
text that is no playlist, keys of several formats in force at once, dates it would fail on,
segments a live playlist lists half, URLs, IPTV titles and master attributes as listed.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from trioproxy.hls.m3u import PlaylistError
from trioproxy.hls.playlist import Key, is_master_playlist, parse_media_playlist
from trioproxy.hls.variants import parse_master_playlist, render_master_playlist

BASE = "http://origin.test/live/index.m3u8"


def media(*rows: str) -> str:
    return "\n".join(["#EXTM3U", "#EXT-X-TARGETDURATION:4", *rows]) + "\n"


@pytest.mark.parametrize("text", ["<html><body>502 Bad Gateway</body></html>", "", "EXTM3U\n"])
def test_text_without_the_header_is_no_playlist_of_either_kind(text: str) -> None:
    with pytest.raises(PlaylistError, match="#EXTM3U"):
        is_master_playlist(text)
    with pytest.raises(PlaylistError, match="#EXTM3U"):
        parse_master_playlist(text, BASE)


def test_a_master_playlist_is_told_from_a_media_playlist() -> None:
    assert is_master_playlist("\ufeff#EXTM3U\r\n#EXT-X-STREAM-INF:BANDWIDTH=1\r\nv.m3u8\r\n")
    assert not is_master_playlist(media("#EXTINF:4,", "a.ts"))


FAIRPLAY = (
    '#EXT-X-KEY:METHOD=SAMPLE-AES,URI="skd://fps/1",'
    'KEYFORMAT="com.apple.streamingkeydelivery",KEYFORMATVERSIONS="1"'
)


def test_keys_of_different_formats_are_in_force_together() -> None:
    playlist = parse_media_playlist(
        media(
            '#EXT-X-KEY:METHOD=SAMPLE-AES,URI="k1.key"',
            FAIRPLAY,
            "#EXTINF:4,",
            "a.ts",
            '#EXT-X-KEY:METHOD=SAMPLE-AES,URI="k2.key"',  # replaces the identity key only
            "#EXTINF:4,",
            "b.ts",
            "#EXTINF:4,",
            "c.ts",
            "#EXT-X-KEY:METHOD=NONE",  # clears every format
            "#EXTINF:4,",
            "d.ts",
        ),
        BASE,
    )
    fairplay = Key(
        "SAMPLE-AES", "skd://fps/1", None, "com.apple.streamingkeydelivery", keyformatversions="1"
    )
    identity1 = Key("SAMPLE-AES", "http://origin.test/live/k1.key")
    identity2 = Key("SAMPLE-AES", "http://origin.test/live/k2.key")
    assert [s.keys for s in playlist.segments] == [
        (identity1, fairplay),
        (identity2, fairplay),
        (identity2, fairplay),
        (),
    ]


def test_a_key_between_extinf_and_uri_applies_to_that_segment() -> None:
    playlist = parse_media_playlist(
        media("#EXTINF:4,", "a.ts", "#EXTINF:4,", '#EXT-X-KEY:METHOD=AES-128,URI="k"', "b.ts"),
        BASE,
    )
    assert [[k.uri for k in s.keys] for s in playlist.segments] == [
        [],
        ["http://origin.test/live/k"],
    ]


@pytest.mark.parametrize("bad", ["yesterday", "2026-01-01T00:00:04", "2026-13-01T00:00:00Z"])
def test_a_date_that_is_malformed_or_has_no_zone_is_dropped_not_fatal(bad: str) -> None:
    playlist = parse_media_playlist(
        media(
            "#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:00Z",
            "#EXTINF:4,",
            "a.ts",
            f"#EXT-X-PROGRAM-DATE-TIME:{bad}",
            "#EXTINF:4,",
            "b.ts",
        ),
        BASE,
    )
    second = playlist.segments[1]
    assert second.program_date_time == datetime(2026, 1, 1, 0, 0, 4, tzinfo=UTC)  # carried on
    assert not second.date_time_listed


def test_what_a_live_playlist_lists_after_its_last_uri_is_no_segment() -> None:
    playlist = parse_media_playlist(
        media(
            "#EXT-X-MEDIA-SEQUENCE:7",
            "#EXTINF:4,",
            "a.ts",
            '#EXT-X-PART:DURATION=1.0,URI="b.part0.ts"',
            "#EXTINF:4,",
        ),
        BASE,
    )
    assert [(s.sequence, s.uri) for s in playlist.segments] == [(7, "http://origin.test/live/a.ts")]


def test_a_uri_without_extinf_between_segments_is_an_error() -> None:
    with pytest.raises(PlaylistError, match="#EXTINF"):
        parse_media_playlist(media("#EXTINF:4,", "a.ts", "stray.ts", "#EXTINF:4,", "b.ts"), BASE)


def test_uris_are_resolved_against_the_playlist_url_itself() -> None:
    playlist = parse_media_playlist(
        media("#EXTINF:4,", "?segment=1", "#EXTINF:4,", "../other/b.ts", "#EXTINF:4,", "/c.ts"),
        BASE + "?token=t",
    )
    assert [s.uri for s in playlist.segments] == [
        "http://origin.test/live/index.m3u8?segment=1",
        "http://origin.test/other/b.ts",
        "http://origin.test/c.ts",
    ]


def test_iptv_attributes_between_duration_and_title_are_skipped() -> None:
    playlist = parse_media_playlist(
        media('#EXTINF: 5.5 tvg-id="news.uk" tvg-logo="l.png",News HD', "n.ts"), BASE
    )
    segment = playlist.segments[0]
    assert (segment.duration, segment.title) == (5.5, "News HD")


@pytest.mark.parametrize("duration", ["-1", "nan", "inf", "1e309", "3601", "five"])
def test_durations_outside_an_hour_or_not_numbers_are_errors(duration: str) -> None:
    with pytest.raises(PlaylistError):
        parse_media_playlist(media(f"#EXTINF:{duration},", "a.ts"), BASE)


def test_a_target_duration_over_an_hour_is_an_error() -> None:
    """We reload at the target duration's pace and tell players to: 10^15 s would stop both."""
    text = "#EXTM3U\n#EXT-X-TARGETDURATION:6472982741971167\n#EXTINF:2,\na.ts\n"
    with pytest.raises(PlaylistError, match="TARGETDURATION"):
        parse_media_playlist(text, BASE)
    hour = "#EXTM3U\n#EXT-X-TARGETDURATION:3600\n#EXTINF:2,\na.ts\n"
    assert parse_media_playlist(hour, BASE).target_duration == 3600.0


def test_master_attributes_are_written_back_as_listed() -> None:
    text = (
        "#EXTM3U\n"
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aac",NAME="Main",DEFAULT=YES,CHANNELS="2",URI="a.m3u8"\n'
        '#EXT-X-STREAM-INF:BANDWIDTH=1500000,CODECS="avc1.4d401f,mp4a.40.2",'
        'RESOLUTION=1280x720,FRAME-RATE=29.970,AUDIO="aac",CLOSED-CAPTIONS="cc",X-VENDOR="v"\n'
        "v.m3u8\n"
    )
    (variant,) = parse_master_playlist(text, BASE)
    assert (variant.bandwidth, variant.resolution, variant.audio) == (1500000, (1280, 720), "aac")
    assert render_master_playlist(variant, "/v.m3u8", lambda n: f"/r{n}.m3u8").splitlines() == [
        "#EXTM3U",
        "#EXT-X-VERSION:4",
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aac",NAME="Main",DEFAULT=YES,CHANNELS="2",URI="/r0.m3u8"',
        '#EXT-X-STREAM-INF:BANDWIDTH=1500000,CODECS="avc1.4d401f,mp4a.40.2",'
        'RESOLUTION=1280x720,FRAME-RATE=29.970,AUDIO="aac",X-VENDOR="v"',
        "/v.m3u8",
    ]
