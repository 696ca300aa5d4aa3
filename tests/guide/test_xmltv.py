"""The pure guide logic: the streaming XMLTV filter, the decoder, the merged guide. Plain
functions of their input, no event loop."""

from __future__ import annotations

import gzip
import zlib

import pytest

from trioproxy.guide import Decoder, GuideError, GuidePart, XmltvFilter, build_guide, parse_time
from trioproxy.guide.document import STEP, GuideBuilder

from .epg import GOOD, WANTED, guide, listed, programme


def read(data: bytes, chunk: int | None = None, *, max_kept: int = 64 << 20) -> GuidePart:
    xmltv = XmltvFilter(WANTED, max_kept=max_kept)
    step = chunk or max(len(data), 1)
    for start in range(0, len(data), step):
        xmltv.feed(data[start : start + step])
    return xmltv.close()


def decode(data: bytes, chunk: int, limit: int = 1 << 30) -> bytes:
    decoder = Decoder(limit)
    out = [
        piece
        for start in range(0, len(data), chunk)
        for piece in decoder.feed(data[start : start + chunk])
    ]
    decoder.close()
    return b"".join(out)


def test_the_filter_keeps_the_wanted_channels_whatever_the_chunking() -> None:
    data = guide(GOOD, others=5)
    whole = read(data)
    assert list(whole.channels) == ["bbc1.uk", "Local.News"]
    assert [(p.channel, p.title) for p in whole.programmes] == [
        ("bbc1.uk", "News"),
        ("bbc1.uk", "Weather"),
        ("bbc1.uk", "Film"),
        ("Local.News", "Local"),
        ("Local.News", "Sport"),
    ]
    # The guide's LOCAL.NEWS is served as the channel list writes it.
    assert 'channel="Local.News"' in whole.programmes[3].xml
    assert 'id="Local.News"' in whole.channels["Local.News"]
    assert whole.programmes[0].description == "About News & more."
    for chunk in (1, 7, 4096):
        assert read(data, chunk) == whole


def test_what_is_kept_is_xml_as_it_was() -> None:
    text = (
        '<tv><channel id="bbc1.uk"><display-name lang="en">A &lt;b&gt; &amp; "c"</display-name>'
        '<icon src="http://x/a.png?x=1&amp;y=&quot;2&quot;"/></channel>'
        '<programme start="20240101120000 +0100" channel="bbc1.uk"><title>T</title>'
        '<sub-title>S</sub-title><episode-num system="xmltv_ns">0.1.</episode-num></programme></tv>'
    )
    part = read(text.encode(), 5)
    document = build_guide([part], WANTED).document
    again = read(document)
    assert again.channels == part.channels
    assert [p.xml for p in again.programmes] == [p.xml for p in part.programmes]
    assert listed(document)["programmes"] == [("bbc1.uk", "T")]
    assert part.programmes[0].start == parse_time("20240101110000")


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE tv [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<tv><channel id="bbc1.uk"><display-name>&lol3;</display-name></channel></tv>
"""
EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE tv [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<tv><channel id="bbc1.uk"><display-name>&secret;</display-name></channel></tv>
"""


@pytest.mark.parametrize("document", [BILLION_LAUGHS, EXTERNAL], ids=["expansion", "external"])
def test_a_guide_declaring_entities_is_refused(document: bytes) -> None:
    with pytest.raises(GuideError, match="declares an entity"):
        read(document)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"<html><body>rate limited</body></html>", "its root is <html>"),
        (b"\x00\x01garbage\xff", "not well-formed XML"),
        (b"", "not well-formed XML"),
        (b"<tv></tv><tv></tv>", "not well-formed XML"),
    ],
)
def test_what_is_not_xmltv_is_an_error(document: bytes, message: str) -> None:
    with pytest.raises(GuideError, match=message):
        read(document)


def test_a_guide_cut_anywhere_is_an_error() -> None:
    data = guide(GOOD, others=1)
    for end in range(0, len(data) - 1, 97):
        with pytest.raises(GuideError):
            read(data[:end])
    assert read(data) == read(data, 97)


def test_the_kept_part_is_bounded() -> None:
    data = guide(GOOD)
    size = read(data).size
    assert read(data, max_kept=size).size == size
    with pytest.raises(GuideError, match="exceed"):
        read(data, max_kept=size - 1)


@pytest.mark.parametrize(
    ("text", "epoch"),
    [
        ("20240101120000 +0000", 1704110400),
        ("20240101120000 +0130", 1704110400 - 5400),
        ("20240101120000 -0500", 1704110400 + 18000),
        ("20240101120000", 1704110400),
        ("202401011200 +0000", 1704110400),
        ("20240101", 1704067200),
        ("20240101120000 Z", 1704110400),
        ("2024010112", 1704110400),
        ("20241301120000 +0000", None),
        ("tomorrow", None),
        ("", None),
        (None, None),
    ],
)
def test_xmltv_times(text: str | None, epoch: int | None) -> None:
    assert parse_time(text) == epoch


def test_gzip_zlib_and_plain_decode_to_the_same_whatever_the_chunking() -> None:
    data = guide(GOOD, others=50)
    members = gzip.compress(data[:1000], mtime=0) + gzip.compress(data[1000:], mtime=0)
    for form in (data, gzip.compress(data), zlib.compress(data), members, members + b"\0\0"):
        for chunk in (1, 333, 1 << 20):
            assert decode(form, chunk) == data


def test_a_compressed_guide_cut_short_or_corrupt_is_an_error() -> None:
    packed = gzip.compress(guide(GOOD))
    with pytest.raises(GuideError, match="cut short"):
        decode(packed[: len(packed) // 2], 100)
    corrupt = packed[:20] + bytes(b ^ 0x55 for b in packed[20:60]) + packed[60:]
    with pytest.raises(GuideError, match="corrupt"):
        decode(corrupt, 100)


def test_what_a_compressed_guide_decodes_to_is_bounded() -> None:
    bomb = gzip.compress(b"\0" * (64 << 20))  # 64 MiB of zeros in ~64 KiB
    decoder = Decoder(1 << 20)
    sizes: list[int] = []

    def consume() -> None:
        sizes.extend(len(piece) for piece in decoder.feed(bomb))

    with pytest.raises(GuideError, match="decodes to more than 1048576 bytes"):
        consume()
    assert max(sizes) <= 64 << 10
    assert sum(sizes) <= 1 << 20


def part_of(*programmes: str) -> GuidePart:
    channels = {p.split('channel="')[1].split('"')[0] for p in programmes}
    head = "".join(
        f'<channel id="{c}"><display-name>{c} here</display-name></channel>' for c in channels
    )
    return read(f"<tv>{head}{''.join(programmes)}</tv>".encode())


def test_sources_merge_in_order_and_programmes_by_start() -> None:
    first = part_of(programme("bbc1.uk", 2000, "Late"), programme("bbc1.uk", 1000, "Early"))
    second = part_of(
        programme("bbc1.uk", 1500, "Other source"), programme("Local.News", 500, "Local")
    )
    built = build_guide([first, second], ["Local.News", "bbc1.uk", "absent.tv"])
    assert listed(built.document) == {
        "channels": ["Local.News", "bbc1.uk"],
        "programmes": [("Local.News", "Local"), ("bbc1.uk", "Early"), ("bbc1.uk", "Late")],
    }
    assert (built.channels, built.programmes) == (2, 3)
    assert gzip.decompress(built.gzipped) == built.document
    assert build_guide([second, first], WANTED).etag != built.etag
    assert build_guide([first, second], ["Local.News", "bbc1.uk"]).etag == built.etag


def test_a_large_guide_is_built_in_steps() -> None:
    part = part_of(*(programme("bbc1.uk", n * 1800, "x" * 2000) for n in range(1500)))
    builder = GuideBuilder([part], WANTED)
    steps = 1
    while not builder.step():
        steps += 1
    built = builder.guide()
    assert steps == -(-len(built.document) // STEP) > 2
    assert gzip.decompress(built.gzipped) == built.document


def test_the_next_programmes_of_a_channel() -> None:
    part = part_of(
        programme("bbc1.uk", 1000, "Over", length=500),
        programme("bbc1.uk", 1500, "On air", length=1000),
        programme("bbc1.uk", 2500, "Next"),
        programme("bbc1.uk", 4300, "After"),
    )
    built = build_guide([part], WANTED)
    titles = [show["title"] for show in built.upcoming("BBC1.uk", 2, now=2000)]
    assert titles == ["On air", "Next"]
    assert built.upcoming("bbc1.uk", 10, now=1_000_000) == []
    unstopped = part_of(
        '<programme start="19700101000000" channel="bbc1.uk"><title>A</title></programme>',
        '<programme start="19700101010000" channel="bbc1.uk"><title>B</title></programme>',
    )
    shows = build_guide([unstopped], WANTED).upcoming("bbc1.uk", 5, now=1800)
    # Without a stop, a show lasts until the next one starts; the last one, on.
    assert [(s["title"], s["start"], s["stop"]) for s in shows] == [
        ("A", 0, None),
        ("B", 3600, None),
    ]
    assert [s["title"] for s in build_guide([unstopped], WANTED).upcoming("bbc1.uk", 5, 3700)] == [
        "B"
    ]
