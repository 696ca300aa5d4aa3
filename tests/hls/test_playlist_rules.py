"""The playlist rules one at a time: parsing (pure), rendering (pure), variant choice, and how a
channel treats finished content."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from trioproxy.config import ConfigError, load_config
from trioproxy.hls.m3u import PlaylistError
from trioproxy.hls.playlist import ByteRange, parse_media_playlist, render_media_playlist
from trioproxy.hls.variants import Variant, VariantLimits, parse_master_playlist, select_variant
from trioproxy.hls.window import KeyTag, SegmentMeta, SegmentWindow
from trioproxy.testing.harness import harness

from ..origin import Origin, origin_config

BASE = "http://origin.test/live/index.m3u8"


def media(*rows: str) -> str:
    return "\n".join(["#EXTM3U", "#EXT-X-TARGETDURATION:4", *rows]) + "\n"


def test_byte_ranges_without_offset_follow_the_previous_range() -> None:
    playlist = parse_media_playlist(
        media(
            "#EXT-X-BYTERANGE:100@50",
            "#EXTINF:4,",
            "all.ts",
            "#EXT-X-BYTERANGE:30",
            "#EXTINF:4,",
            "all.ts",
        ),
        BASE,
    )
    assert [s.byterange for s in playlist.segments] == [ByteRange(100, 50), ByteRange(30, 150)]


def test_program_date_time_is_carried_to_later_segments_until_a_discontinuity() -> None:
    playlist = parse_media_playlist(
        media(
            "#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:00Z",
            "#EXTINF:4,",
            "a.ts",
            "#EXTINF:2.5,",
            "b.ts",
            "#EXTINF:4,",
            "c.ts",
            "#EXT-X-DISCONTINUITY",
            "#EXTINF:4,",
            "d.ts",
        ),
        BASE,
    )
    start = datetime(2026, 1, 1, tzinfo=UTC)
    times = [s.program_date_time for s in playlist.segments]
    assert times[0] == start
    assert times[2] is not None
    assert (times[2] - start).total_seconds() == 6.5
    assert times[3] is None
    assert [s.date_time_listed for s in playlist.segments] == [True, False, False, False]


def test_a_date_at_the_end_of_time_is_dropped() -> None:
    playlist = parse_media_playlist(
        media(
            "#EXT-X-PROGRAM-DATE-TIME:9999-12-31T23:59:59Z",
            "#EXTINF:4,",
            "a.ts",
            "#EXTINF:4,",
            "b.ts",
        ),
        BASE,
    )
    assert playlist.segments[1].program_date_time is None


def test_discontinuity_numbers_count_from_the_discontinuity_sequence() -> None:
    playlist = parse_media_playlist(
        media(
            "#EXT-X-DISCONTINUITY-SEQUENCE:4",
            "#EXTINF:4,",
            "a.ts",
            "#EXT-X-DISCONTINUITY",
            "#EXTINF:4,",
            "b.ts",
        ),
        BASE,
    )
    assert [s.discontinuity_number for s in playlist.segments] == [4, 5]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "<html></html>",
        "#EXTM3U\n#EXTINF:4,\nfile:///etc/passwd\n",
        "#EXTM3U\n#EXTINF:4,\nhttp://[x/a.ts\n",
        "#EXTM3U\n#EXTINF:4,\nhttp://h:99999999/a.ts\n",
        '#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI="http://[::1/k"\n',
        "#EXTM3U\n#EXTINF:-1,\na.ts\n",
        "#EXTM3U\n#EXTINF:nan,\na.ts\n",
        "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:-3\n",
        "#EXTM3U\n#EXT-X-KEY:METHOD=AES-128\n#EXTINF:4,\na.ts\n",
        '#EXTM3U\n#EXT-X-MAP:BYTERANGE="1@0"\n',
        "#EXTM3U\n#EXT-X-BYTERANGE:0@0\n#EXTINF:4,\na.ts\n",
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n",
    ],
)
def test_unusable_playlists_raise_playlist_error(text: str) -> None:
    with pytest.raises(PlaylistError):
        parse_media_playlist(text, BASE)


def window_with(*metas: SegmentMeta, duration: float = 4.0) -> SegmentWindow:
    window = SegmentWindow(10)
    for n, meta in enumerate(metas):
        window.append(b"x", duration, upstream_sequence=100 + n, meta=meta)
    return window


def render(window: SegmentWindow, **options: object) -> list[str]:
    text = render_media_playlist(
        list(window),
        target_duration=window.target_duration,
        segment_uri=lambda s: f"{s.sequence}.{s.meta.extension}",
        resource_uri=lambda n: f"r/{n}",
        **options,  # type: ignore[arg-type]
    )
    return text.splitlines()


def test_version_is_high_enough_for_the_tags_used() -> None:
    assert render(window_with(SegmentMeta()))[1] == "#EXT-X-VERSION:3"
    sample_aes = SegmentMeta(keys=(KeyTag("SAMPLE-AES", resource=0),))
    assert render(window_with(sample_aes))[1] == "#EXT-X-VERSION:5"
    fmp4 = SegmentMeta(extension="m4s", init=0)
    assert render(window_with(fmp4))[1] == "#EXT-X-VERSION:6"


def test_target_duration_covers_every_rounded_extinf() -> None:
    window = SegmentWindow(10)
    window.append(b"x", 4.4)
    window.append(b"x", 4.5)  # rounds to 5
    assert "#EXT-X-TARGETDURATION:5" in render(window)
    lines = render_media_playlist(
        list(window), target_duration=1, segment_uri=lambda s: str(s.sequence)
    ).splitlines()
    assert "#EXT-X-TARGETDURATION:5" in lines


def test_aes128_without_iv_gets_the_upstream_sequence_as_iv() -> None:
    key = SegmentMeta(keys=(KeyTag("AES-128", resource=3),))
    lines = render(window_with(key, key))
    keys = [line for line in lines if line.startswith("#EXT-X-KEY")]
    assert keys == [
        '#EXT-X-KEY:METHOD=AES-128,URI="r/3",IV=0x00000000000000000000000000000064',
        '#EXT-X-KEY:METHOD=AES-128,URI="r/3",IV=0x00000000000000000000000000000065',
    ]


def test_start_offset_and_date_time() -> None:
    moment = datetime(2026, 1, 1, 12, 0, 0, 250000, tzinfo=UTC)
    lines = render(window_with(SegmentMeta(program_date_time=moment)), start_offset=12.0)
    assert "#EXT-X-START:TIME-OFFSET=-12.000" in lines
    assert "#EXT-X-PROGRAM-DATE-TIME:2026-01-01T12:00:00.250+00:00" in lines


MASTER = """#EXTM3U
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="en",DEFAULT=YES,URI="audio/en.m3u8"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="b",NAME="fr",URI="audio/fr.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,AUDIO="a"
low.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=5000000,RESOLUTION=1920x1080,AUDIO="a"
high.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=2500000,RESOLUTION=1280x720,AUDIO="b"
mid.m3u8
"""


@pytest.mark.parametrize(
    ("limits", "chosen"),
    [
        (VariantLimits(), "high.m3u8"),
        (VariantLimits(max_bandwidth=3_000_000), "mid.m3u8"),
        (VariantLimits(max_height=720), "mid.m3u8"),
        (VariantLimits(max_height=480), "low.m3u8"),
        (VariantLimits(max_bandwidth=100), "low.m3u8"),  # nothing fits: the smallest
    ],
)
def test_variant_choice(limits: VariantLimits, chosen: str) -> None:
    variant = select_variant(parse_master_playlist(MASTER, BASE), limits)
    assert variant.uri == "http://origin.test/live/" + chosen


def test_variants_know_their_renditions() -> None:
    variants: list[Variant] = parse_master_playlist(MASTER, BASE)
    assert [r.name for r in variants[1].renditions] == ["en"]
    assert [r.name for r in variants[2].renditions] == ["fr"]


@pytest.mark.parametrize(("text", "height"), [("720", 720), ("720p", 720), ("1920x1080", 1080)])
def test_resolution_limit_setting(text: str, height: int) -> None:
    config = load_config({"TRIOPROXY_VARIANT_MAX_RESOLUTION": text})
    assert config.variant_max_resolution == height


def test_bad_resolution_limit_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="TRIOPROXY_VARIANT_MAX_RESOLUTION"):
        load_config({"TRIOPROXY_VARIANT_MAX_RESOLUTION": "big"})


async def test_finished_content_is_served_whole_and_polling_ends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rows = ["#EXTM3U", "#EXT-X-TARGETDURATION:4", "#EXT-X-PLAYLIST-TYPE:VOD"]
    for n in range(30):
        rows += ["#EXTINF:4.0,", f"v{n}.ts"]
    origin = Origin(playlists={"/live/index.m3u8": "\n".join([*rows, "#EXT-X-ENDLIST"])})
    config = origin_config(hls_window_size=6, hls_max_segments=20)
    async with harness(config, origin=origin) as h:
        response = await h.open_playlist("c" * 40)
        assert response.status_code == 200
        url = response.url
        await trio.sleep(10)
        loads = origin.playlist_loads
        response = await h.client.get(url)
        lines = response.text.splitlines()
        assert lines[-1] == "#EXT-X-ENDLIST"
        assert sum(1 for line in lines if line.startswith("#EXTINF")) == 30
        assert "#EXT-X-MEDIA-SEQUENCE:0" in lines
        for uri in (line for line in lines if not line.startswith("#")):
            assert (await h.client.get(uri)).status_code == 200
        await trio.sleep(30)
        assert origin.playlist_loads == loads == 1  # read once, never reloaded


FRAGMENTS = [
    "#EXTM3U",
    "#EXTINF:",
    "#EXTINF:4.0,",
    "#EXT-X-BYTERANGE:",
    "#EXT-X-KEY:METHOD=AES-128,URI=",
    "#EXT-X-KEY:",
    "#EXT-X-MAP:URI=",
    "#EXT-X-MAP:",
    "#EXT-X-PROGRAM-DATE-TIME:",
    "#EXT-X-MEDIA-SEQUENCE:",
    "#EXT-X-DISCONTINUITY-SEQUENCE:",
    "#EXT-X-TARGETDURATION:",
    "#EXT-X-SKIP:SKIPPED-SEGMENTS=",
    "#EXT-X-STREAM-INF:BANDWIDTH=",
    "#EXT-X-MEDIA:TYPE=AUDIO,URI=",
    "#EXT-X-DISCONTINUITY",
    "#EXT-X-ENDLIST",
    "#EXT-X-GAP",
    "a.ts",
    "http://x.test/b.ts",
    "//evil/c.ts",
    "file:///d",
    "http://[x/e.ts",
    "http://h:99999999/f.ts",
    '"',
    ",",
    "@",
    "=",
    "\n",
    "\r\n",
    "\ufeff",
]


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=8), st.integers().map(str)),
        max_size=40,
    )
)
def test_any_text_parses_or_raises_playlist_error(pieces: list[str]) -> None:
    text = "#EXTM3U\n" + "".join(pieces)
    with contextlib.suppress(PlaylistError):
        parse_media_playlist(text, BASE)
    with contextlib.suppress(PlaylistError):
        select_variant(parse_master_playlist(text, BASE), VariantLimits(max_height=720))
