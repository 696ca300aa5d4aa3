"""Whether a video PES opens on a random-access point, from the codec's own units. Pure, no I/O.

For streams that set no ``random_access_indicator``: the start codes of the PES payload are read
up to its first picture. H.264: an IDR slice (NAL type 5), or a recovery point SEI with an SPS
(open-GOP broadcasts that send no IDR). H.265: an IRAP picture (NAL types 16–23). MPEG-1/2 video:
a sequence header before the picture. A start code may straddle two packets: the scan is fed the
payload piece by piece and carries the few bytes that could begin one.
"""

from __future__ import annotations

__all__ = ["KeyframeScan"]

_START = b"\x00\x00\x01"
_LOOK = 2
"""Bytes read after a start code: the NAL header, and for an H.264 SEI its payload type."""


class KeyframeScan:
    """Reads one PES's payload, piece by piece, until its first picture says whether it is a
    random-access point."""

    __slots__ = ("_codec", "_parameter_sets", "_recovery", "_tail")

    def __init__(self, codec: str) -> None:
        self._codec = codec
        self._tail = b""
        self._parameter_sets = False
        self._recovery = False

    def feed(self, data: bytes | bytearray | memoryview) -> bool | None:
        """``True`` (a random-access point) or ``False`` once the first picture is found;
        ``None`` while the payload so far holds none."""
        if not self._codec:
            return False
        buf = self._tail + bytes(data) if self._tail else bytes(data)
        start = 0
        while True:
            found = buf.find(_START, start)
            if found < 0:
                self._tail = buf[-2:]
                return None
            if found + 3 + _LOOK > len(buf):
                self._tail = buf[found:]
                return None
            verdict = self._unit(buf[found + 3], buf[found + 4])
            if verdict is not None:
                return verdict
            start = found + 3

    def _unit(self, header: int, after: int) -> bool | None:
        codec = self._codec
        if codec == "h264":
            kind = header & 0x1F
            if kind == 5:
                return True
            if 1 <= kind <= 4:
                return self._recovery and self._parameter_sets
            if kind == 7:
                self._parameter_sets = True
            elif kind == 6 and after == 6:  # SEI whose first message is a recovery point
                self._recovery = True
            return None
        if codec == "hevc":
            kind = (header >> 1) & 0x3F
            if kind < 32:
                return 16 <= kind <= 23
            return None
        if codec == "mpeg2":
            if header == 0xB3:
                self._parameter_sets = True
            elif header == 0x00:  # picture start
                return self._parameter_sets
            return None
        return False
