"""Splicing MPEG-TS segments into one stream: counters continued, discontinuities marked."""

from __future__ import annotations

import itertools
from collections import Counter

from trioproxy.hls.mpegts import NULL_PACKET, PACKET_SIZE, Splicer, is_transport_stream
from trioproxy.testing.engine import demo_media


def counters(data: bytes) -> dict[int, list[int]]:
    found: dict[int, list[int]] = {}
    for pos in range(0, len(data), PACKET_SIZE):
        pid = ((data[pos + 1] & 0x1F) << 8) | data[pos + 2]
        if data[pos + 3] & 0x10:
            found.setdefault(pid, []).append(data[pos + 3] & 0x0F)
    return found


def continuous(stream: bytes) -> bool:
    return all(
        all((b - a) % 16 == 1 for a, b in itertools.pairwise(ccs))
        for pid, ccs in counters(stream).items()
    )


def discontinuity_flags(data: bytes) -> Counter[int]:
    flagged: Counter[int] = Counter()
    for pos in range(0, len(data), PACKET_SIZE):
        if data[pos + 3] & 0x20 and data[pos + 4] and data[pos + 5] & 0x80:
            flagged[((data[pos + 1] & 0x1F) << 8) | data[pos + 2]] += 1
    return flagged


def test_null_packets_are_whole_packets_of_pid_0x1fff() -> None:
    assert len(NULL_PACKET) == PACKET_SIZE
    assert NULL_PACKET[0] == 0x47
    assert ((NULL_PACKET[1] & 0x1F) << 8) | NULL_PACKET[2] == 0x1FFF
    assert is_transport_stream(NULL_PACKET * 3)
    assert not is_transport_stream(NULL_PACKET[:-1])
    assert not is_transport_stream(b"")


def test_segments_that_already_follow_on_come_back_untouched() -> None:
    media = demo_media()
    splicer = Splicer()
    out = [splicer.splice(segment) for segment in media]
    assert all(a is b for a, b in zip(out, media, strict=True))
    assert continuous(b"".join(out))


def test_a_restart_or_a_gap_continues_every_counter() -> None:
    media = demo_media()
    assert not continuous(media[0] + media[3])  # a gap: segments 1 and 2 are missing
    splicer = Splicer()
    joined = [splicer.splice(media[0]), splicer.splice(media[3]), splicer.splice(media[0])]
    assert continuous(b"".join(joined))
    assert joined[0] is media[0]
    assert len(joined[1]) == len(media[3])
    assert discontinuity_flags(b"".join(joined)) == Counter()  # no discontinuity was flagged


def test_a_discontinuity_is_marked_on_the_first_adaptation_field_of_each_pid() -> None:
    media = demo_media()
    splicer = Splicer()
    splicer.splice(media[5])
    after = splicer.splice(media[0], discontinuity=True)
    flagged = discontinuity_flags(after)
    assert flagged
    assert set(flagged.values()) == {1}
    assert discontinuity_flags(media[0]) == Counter()
    # Nothing else changed: every byte but the counters and the flags is the same.
    changed = [i for i, (a, b) in enumerate(zip(media[0], after, strict=True)) if a != b]
    assert all(i % PACKET_SIZE in (3, 5) for i in changed)


def test_what_is_not_mpegts_passes_as_it_is_and_restarts_the_counters() -> None:
    media = demo_media()
    splicer = Splicer()
    splicer.splice(media[0])
    garbage = b"not a transport stream"
    assert splicer.splice(garbage) is garbage
    assert splicer.splice(media[3]) is media[3]
