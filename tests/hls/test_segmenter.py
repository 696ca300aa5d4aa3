"""Cutting an engine's MPEG-TS into our own segments, on real streams ffmpeg makes here.

What a player needs of each segment: it opens with PAT, PMT and a keyframe (ffprobe reads each
segment alone), its #EXTINF matches its PTS span to within a frame, and no segment is longer than
the target duration, which never changes.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from trioproxy.hls.mpegts import NULL_PACKET
from trioproxy.hls.segmenter import Cut, Segmenter
from trioproxy.hls.window import rounded_duration

from ..media_ts import (
    PACKET_SIZE,
    make_ts,
    packet_pids,
    probe_packets,
    pts_span,
    segment_problems,
    strip_random_access,
)
from ..tools import require_tools

pytestmark = require_tools("ffmpeg", "ffprobe")

CLOCK = 90_000
STREAMS: dict[str, dict[str, object]] = {
    "h264_aac": {"video": "h264", "audio": "aac", "seconds": 8, "gop": 30},
    "hevc_ac3": {"video": "hevc", "audio": "ac3", "seconds": 6, "gop": 25},
    "mpeg2_mp2": {"video": "mpeg2", "audio": "mp2", "seconds": 6, "gop": 25},
    "audio_only": {"video": None, "audio": "aac", "seconds": 7},
    "pts_wrap": {"video": "h264", "audio": "aac", "seconds": 6, "gop": 25, "offset": 95441.0},
    "later_clock": {"video": "h264", "audio": "aac", "seconds": 5, "gop": 25, "offset": 1000.0},
    "long_gop": {"video": "h264", "audio": "aac", "seconds": 10, "gop": 100},
    "one_keyframe": {"video": "h264", "audio": None, "seconds": 8, "gop": 1000},
}
SECONDS = {name: float(str(spec["seconds"])) for name, spec in STREAMS.items()}

Media = Callable[[str], bytes]


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    """Each stream of :data:`STREAMS`, made once per session on first use."""
    folder = tmp_path_factory.mktemp("segmenter-media")

    @cache
    def make(name: str) -> bytes:
        return make_ts(Path(folder / f"{name}.ts"), **STREAMS[name])  # type: ignore[arg-type]

    return make


@dataclass
class Run:
    cuts: list[Cut]
    packets: bytes
    heads: list[bytes]


def chunks(data: bytes, seed: int = 1, largest: int = 5000) -> Iterator[bytes]:
    rnd = random.Random(seed)
    pos = 0
    while pos < len(data):
        size = rnd.randint(1, largest)
        yield data[pos : pos + size]
        pos += size


def segment(data: bytes, *, seed: int = 1, segmenter: Segmenter | None = None) -> Run:
    """``data`` fed in chunks of random sizes, then ended."""
    seg = segmenter or Segmenter()
    run = Run([], b"", [])
    packets = []
    for chunk in chunks(data, seed):
        fed = seg.feed(chunk)
        packets.append(fed.packets)
        run.cuts += fed.cuts
        run.heads.append(seg.head)
    last = seg.end()
    if last is not None:
        run.cuts.append(last)
    run.packets = b"".join(packets)
    return run


def assert_playable(cuts: list[Cut], target_duration: int, kind: str = "video") -> None:
    """Each segment opens as a player needs and lasts what its PTS span says."""
    for n, cut in enumerate(cuts):
        probed = probe_packets(cut.data)
        assert segment_problems(cut.data, keyframe=cut.keyframe, probed=probed) == [], n
        span, frame = pts_span(probed, kind)
        assert abs(cut.duration * CLOCK - span) <= frame, (n, cut.duration, span / CLOCK)
        assert rounded_duration(cut.duration) <= target_duration, (n, cut.duration)


@pytest.mark.parametrize("name", ["h264_aac", "hevc_ac3", "mpeg2_mp2", "pts_wrap"])
def test_each_segment_opens_with_pat_pmt_and_a_keyframe_and_lasts_its_pts_span(
    media: Media, name: str
) -> None:
    seg = Segmenter(target=2.0)
    assert seg.target_duration == 3
    run = segment(media(name), segmenter=seg)
    assert seg.target_duration == 3
    assert len(run.cuts) >= 3
    assert all(cut.keyframe and not cut.discontinuity for cut in run.cuts)
    assert_playable(run.cuts, seg.target_duration)
    # Cut at the first keyframe past 2 s (GOPs of 1 or 1.2 s): 2.0 or 2.4 s.
    assert all(cut.duration >= 2.0 for cut in run.cuts[:-1])
    assert sum(cut.duration for cut in run.cuts) == pytest.approx(SECONDS[name], abs=0.04)


def test_the_pts_wrap_is_inside_the_wrapping_stream(media: Media) -> None:
    video = [p.pts for p in probe_packets(media("pts_wrap")) if p.kind == "video"]
    assert video[0] is not None
    assert video[-1] is not None
    assert video[-1] < video[0]  # the counter went round during the stream


@pytest.mark.parametrize("name", ["h264_aac", "hevc_ac3", "mpeg2_mp2"])
def test_without_random_access_flags_the_cuts_are_the_same(media: Media, name: str) -> None:
    flagged = segment(media(name)).cuts
    bare = segment(strip_random_access(media(name))).cuts
    assert [c.duration for c in bare] == [c.duration for c in flagged]
    assert [c.keyframe for c in bare] == [c.keyframe for c in flagged]
    assert [c.data for c in bare] == [strip_random_access(c.data) for c in flagged]


def test_any_chunking_gives_the_same_segments_and_passes_every_packet(media: Media) -> None:
    data = media("h264_aac")
    whole = Segmenter()
    fed = whole.feed(data)
    cuts = [*fed.cuts, whole.end()]
    for seed, largest in ((1, 5000), (2, 200), (3, 7)):
        seg = Segmenter()
        got: list[Cut | None] = []
        packets = []
        for chunk in chunks(data, seed, largest):
            step = seg.feed(chunk)
            got += step.cuts
            packets.append(step.packets)
        got.append(seg.end())
        assert got == cuts
        # Every packet passes on, the last one once the next one's sync byte confirms it.
        assert b"".join(packets) == fed.packets == data[:-PACKET_SIZE]


def test_audio_only_is_cut_by_time(media: Media) -> None:
    seg = Segmenter(target=2.0)
    run = segment(media("audio_only"), segmenter=seg)
    assert len(run.cuts) == 4
    assert all(cut.keyframe for cut in run.cuts)
    *cut_by_time, last = run.cuts
    assert_playable(cut_by_time, seg.target_duration, kind="audio")
    for cut in cut_by_time:  # a PES holds ~0.1 s of audio here: cut at the nearest one
        assert cut.duration == pytest.approx(2.0, abs=0.1)
    # The last segment has no next PTS: its last PES is taken to last as long as the others,
    # and ffmpeg's last one is shorter.
    assert segment_problems(last.data) == []
    span, _ = pts_span(probe_packets(last.data), "audio")
    assert 0 <= last.duration * CLOCK - span <= 0.1 * CLOCK


@pytest.mark.parametrize(("name", "target"), [("long_gop", 2.0), ("one_keyframe", 2.0)])
def test_rare_keyframes_are_force_cut_within_the_target_duration(
    media: Media, name: str, target: float
) -> None:
    seg = Segmenter(target=target)
    run = segment(media(name), segmenter=seg)
    assert seg.target_duration == 3
    assert_playable(run.cuts, seg.target_duration)
    assert max(cut.duration for cut in run.cuts) < 3.5
    assert [c for c in run.cuts if not c.keyframe], "some segments had to be force-cut"
    assert sum(cut.duration for cut in run.cuts) == pytest.approx(SECONDS[name], abs=0.04)
    # What is held between cuts never outgrows a segment.
    assert max(len(head) for head in run.heads) <= max(len(c.data) for c in run.cuts) + 5000
    if name == "long_gop":  # keyframes every 4 s: each one starts a segment again
        assert sum(c.keyframe for c in run.cuts) == 3


def test_garbage_and_a_packet_cut_short_lose_only_the_packets_they_touch(media: Media) -> None:
    data = media("h264_aac")
    rnd = random.Random(7)
    garbage = bytes(rnd.randrange(256) for _ in range(700))
    # Two sync bytes a packet apart, the next packet not where a third would be: no lock.
    fake_sync = (b"\x47" + bytes(187)) * 2 + bytes(5)
    at = [300, 900, 1500]
    damaged = (
        garbage[:333]
        + data[: at[0] * PACKET_SIZE]
        + garbage
        + fake_sync
        + data[at[0] * PACKET_SIZE : at[1] * PACKET_SIZE + 100]  # packet at[1] cut short
        + data[(at[1] + 1) * PACKET_SIZE : at[2] * PACKET_SIZE]
        + garbage[:50]
        + data[at[2] * PACKET_SIZE :]
    )
    run = segment(damaged, seed=3)
    original = [data[p : p + PACKET_SIZE] for p in range(0, len(data), PACKET_SIZE)]
    out = [run.packets[p : p + PACKET_SIZE] for p in range(0, len(run.packets), PACKET_SIZE)]
    assert len(run.packets) % PACKET_SIZE == 0
    position = iter(original)
    assert all(packet in position for packet in out), "only original packets, in order"
    assert len(original) - len(out) <= len(at) + 1  # + the last, which nothing confirms
    assert len(run.cuts) >= 3
    assert all(cut.keyframe and not cut.discontinuity for cut in run.cuts)
    assert_playable(run.cuts, 3)


@pytest.mark.parametrize("order", [("h264_aac", "later_clock"), ("later_clock", "h264_aac")])
def test_a_timebase_jump_starts_a_discontinuity(media: Media, order: tuple[str, str]) -> None:
    first, second = (media(name) for name in order)
    run = segment(first + second)
    marked = [n for n, cut in enumerate(run.cuts) if cut.discontinuity]
    assert len(marked) == 1
    assert_playable(run.cuts, 3)
    before = run.cuts[: marked[0]]
    assert sum(c.duration for c in before) == pytest.approx(SECONDS[order[0]], abs=0.04)
    assert sum(c.duration for c in run.cuts) == pytest.approx(
        SECONDS[order[0]] + SECONDS[order[1]], abs=0.08
    )


def test_a_new_pmt_is_followed(media: Media) -> None:
    run = segment(media("h264_aac") + media("hevc_ac3"))
    codecs = [{p.codec for p in probe_packets(cut.data) if p.kind == "video"} for cut in run.cuts]
    switch = codecs.index({"hevc"})
    assert codecs[:switch] == [{"h264"}] * switch
    assert codecs[switch:] == [{"hevc"}] * (len(codecs) - switch)
    assert [n for n, cut in enumerate(run.cuts) if cut.discontinuity] == [switch]
    assert_playable(run.cuts, 3)


def test_a_new_session_drops_the_partial_packet_and_marks_a_discontinuity(
    media: Media,
) -> None:
    first, second = media("h264_aac"), media("later_clock")
    seg = Segmenter()
    half = len(first) // 2 + 100  # mid-packet
    before = seg.feed(first[:half])
    assert seg.media_seen
    assert seg.head
    seg.new_session()
    assert not seg.head  # the segment in progress is dropped
    assert not seg.media_seen
    after = segment(second, segmenter=seg)
    assert after.packets == second[:-PACKET_SIZE]  # nothing of the cut packet glued on
    assert seg.media_seen
    assert not any(cut.discontinuity for cut in before.cuts)
    assert [cut.discontinuity for cut in after.cuts] == [True] + [False] * (len(after.cuts) - 1)
    assert sum(c.duration for c in after.cuts) == pytest.approx(SECONDS["later_clock"], abs=0.04)
    assert_playable(after.cuts[:1], 3)


def test_media_seen_waits_for_media_past_psi_and_null_packets(media: Media) -> None:
    data = media("h264_aac")
    packets = [data[p : p + PACKET_SIZE] for p in range(0, len(data), PACKET_SIZE)]
    pids = packet_pids(data)
    psi = b"".join(p for p, pid in zip(packets, pids, strict=True) if pid in (0, 0x11, 0x1000))
    seg = Segmenter()
    fed = seg.feed(NULL_PACKET * 10 + psi[: 20 * PACKET_SIZE] + NULL_PACKET * 10)
    assert not seg.media_seen
    assert len(fed.packets) == 39 * PACKET_SIZE
    seg.feed(data)
    assert seg.media_seen


def test_the_head_is_where_a_joining_player_starts(media: Media) -> None:
    seg = Segmenter()
    previous = b""
    for chunk in chunks(media("h264_aac"), largest=20_000):
        fed = seg.feed(chunk)
        if fed.cuts and previous:
            assert fed.cuts[0].data.startswith(previous)
        previous = seg.head
    assert segment_problems(previous) == []


def test_the_target_sets_a_fixed_target_duration() -> None:
    assert Segmenter(target=6.0).target_duration == 9
    assert Segmenter(target=1.0).target_duration == 2
    with pytest.raises(ValueError, match="target"):
        Segmenter(target=0)


@pytest.mark.parametrize("seed", range(4))
def test_bit_errors_anywhere_never_break_the_segmenter(media: Media, seed: int) -> None:
    """Damaged headers, PSI and PES: segments still come, whole packets opening with PAT, PMT."""
    data = bytearray(media("hevc_ac3"))
    rnd = random.Random(seed)
    for _ in range(len(data) // 500):
        data[rnd.randrange(len(data))] ^= 1 << rnd.randrange(8)
    seg = Segmenter()
    run = segment(bytes(data), seed=seed, segmenter=seg)
    assert len(run.cuts) >= 2
    for cut in run.cuts:
        assert segment_problems(cut.data, keyframe=False) == []
        assert 0 <= rounded_duration(cut.duration) <= seg.target_duration
