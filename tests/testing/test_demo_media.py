"""The demo's looped media: each loop continues the previous one's clocks and counters."""

from __future__ import annotations

import itertools

import pytest

from trioproxy.testing import mpegts
from trioproxy.testing.engine import SimulatedEngine, demo_media


def timestamps(data: bytes) -> list[int]:
    """Every PTS in ``data``, in order."""
    found = []
    for pos in range(0, len(data), mpegts.PACKET_SIZE):
        packet = data[pos : pos + mpegts.PACKET_SIZE]
        if not packet[1] & 0x40:
            continue
        start = 4 + (1 + packet[4] if packet[3] & 0x20 else 0)
        if packet[start : start + 3] == b"\x00\x00\x01" and packet[start + 7] & 0x80:
            b = packet[start + 9 : start + 14]
            found.append(
                ((b[0] >> 1) & 7) << 30 | b[1] << 22 | (b[2] >> 1) << 15 | b[3] << 7 | b[4] >> 1
            )
    return found


def counters(data: bytes, pid: int) -> list[int]:
    return [
        data[pos + 3] & 0x0F
        for pos in range(0, len(data), mpegts.PACKET_SIZE)
        if ((data[pos + 1] & 0x1F) << 8 | data[pos + 2]) == pid and data[pos + 3] & 0x10
    ]


def test_second_loop_continues_the_first() -> None:
    engine = SimulatedEngine(demo_media(), durations=[2.0], seamless=True)
    loops = len(engine.media)
    stream = b"".join(engine.segment_bytes(n) for n in range(3 * loops))
    pts = timestamps(stream)
    steps = {b - a for a, b in itertools.pairwise(pts)}
    assert steps == {3600}  # 25 frames/s on a 90 kHz clock, across both loop points
    for pid in mpegts.payload_packets(stream):
        ccs = counters(stream, pid)
        assert all((b - a) % 16 == 1 for a, b in itertools.pairwise(ccs)), pid
    assert len(engine.segment_bytes(loops)) == len(engine.media[0])


def test_garbage_is_refused() -> None:
    with pytest.raises(ValueError, match="188"):
        mpegts.shift(b"\x47" * 100, 90000, {})
    with pytest.raises(ValueError, match="sync"):
        mpegts.shift(b"\x00" * 188, 90000, {})
