"""MPEG-TS packet helpers for serving a channel's segments as one continuous stream. Pure, no I/O.

Segments joined end to end make a valid transport stream only if each PID's continuity counter
runs on across the joins and a player is told where the clocks jump. :class:`Splicer` does both,
once per segment for every player: it continues each PID's counter from the previous segment
(so a gap or an upstream restart shows no continuity error), and on a segment that follows a
discontinuity it sets the ``discontinuity_indicator`` of the first adaptation field of each PID,
which tells demuxers that the PCR (and so PTS/DTS) jumps there. Segments that need neither come
back as the very same ``bytes`` object: no copy.
"""

from __future__ import annotations

__all__ = ["NULL_PACKET", "PACKET_SIZE", "Splicer", "is_transport_stream", "null_packets"]

PACKET_SIZE = 188
SYNC = 0x47
NULL_PID = 0x1FFF
NULL_PACKET = bytes([SYNC, 0x1F, 0xFF, 0x10]) + b"\xff" * (PACKET_SIZE - 4)
"""One null packet (PID 0x1FFF, payload only): demuxers skip it; it keeps a connection busy."""


def null_packets(count: int) -> bytes:
    return NULL_PACKET * count


def is_transport_stream(data: bytes) -> bool:
    """Whole 188-byte packets, each starting with the sync byte."""
    if not data or len(data) % PACKET_SIZE:
        return False
    return data[::PACKET_SIZE] == bytes([SYNC]) * (len(data) // PACKET_SIZE)


class Splicer:
    """Joins segments into one stream: continuity counters continued, discontinuities marked."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: dict[int, int] = {}
        """The last continuity counter sent per PID."""

    def splice(self, data: bytes, *, discontinuity: bool = False) -> bytes:
        """``data`` ready to follow what was spliced before. Data that is not whole TS packets
        passes as it is (and what follows it starts the counters afresh)."""
        if not is_transport_stream(data):
            self._last.clear()
            return data
        view = memoryview(data)
        shift: dict[int, int] = {}
        last = self._last
        marked: set[int] = set()
        mark: list[int] = []
        for pos in range(0, len(data), PACKET_SIZE):
            pid = ((view[pos + 1] & 0x1F) << 8) | view[pos + 2]
            if pid == NULL_PID:
                continue
            flags = view[pos + 3]
            cc = flags & 0x0F
            offset = shift.get(pid)
            if offset is None:
                previous = last.get(pid)
                if previous is None:
                    offset = 0
                else:
                    expected = (previous + 1) & 0x0F if flags & 0x10 else previous
                    offset = (expected - cc) & 0x0F
                shift[pid] = offset
            last[pid] = (cc + offset) & 0x0F
            if discontinuity and pid not in marked and flags & 0x20 and view[pos + 4]:
                marked.add(pid)
                mark.append(pos)
        return _changed(data, shift, mark)

    def aligned(self, data: bytes) -> bytes:
        """``data``, the upstream's own packets up to the last one spliced (a player's start
        mid-stream), with the counters they were spliced with: what was spliced after it
        follows on."""
        if not is_transport_stream(data):
            return data
        raw = Splicer()
        raw.splice(data)
        last = self._last
        shift = {pid: (last[pid] - cc) & 0x0F for pid, cc in raw._last.items() if pid in last}
        return _changed(data, shift, [])


def _changed(data: bytes, shift: dict[int, int], mark: list[int]) -> bytes:
    """``data`` with each PID's counters moved on by ``shift`` and the packets at ``mark``
    marked ``discontinuity_indicator`` (the very same ``bytes`` when neither changes a bit)."""
    if not mark and not any(shift.values()):
        return data
    out = bytearray(data)
    if any(shift.values()):
        for pos in range(0, len(out), PACKET_SIZE):
            pid = ((out[pos + 1] & 0x1F) << 8) | out[pos + 2]
            offset = shift.get(pid, 0)
            if offset:
                out[pos + 3] = (out[pos + 3] & 0xF0) | ((out[pos + 3] + offset) & 0x0F)
    for pos in mark:
        out[pos + 5] |= 0x80  # discontinuity_indicator, the adaptation field's first flag
    return bytes(out)
