"""Reading MPEG-TS packets: their headers, PSI sections (PAT, PMT) and PES headers. Pure, no I/O.

Each function reads one thing from bytes it is given and says ``None`` (or nothing) when the
bytes do not hold it; none of them raises on malformed input, because an engine's stream carries
whatever the swarm delivered.
"""

from __future__ import annotations

from dataclasses import dataclass

from .mpegts import PACKET_SIZE

__all__ = [
    "PAT_PID",
    "PTS_MODULO",
    "Elementary",
    "Program",
    "PsiAssembler",
    "adaptation_flags",
    "crc32_mpeg2",
    "es_data_offset",
    "packet_pid",
    "parse_pat",
    "parse_pmt",
    "payload_offset",
    "pes_pts",
    "signed_pts_delta",
]

PAT_PID = 0x0000
PTS_MODULO = 1 << 33
"""PTS and DTS are 33-bit counters of a 90 kHz clock: they wrap every ~26.5 h."""

DISCONTINUITY = 0x80
RANDOM_ACCESS = 0x40


def packet_pid(packet: bytes | bytearray | memoryview, pos: int = 0) -> int:
    return ((packet[pos + 1] & 0x1F) << 8) | packet[pos + 2]


def adaptation_flags(buf: bytes | bytearray, pos: int) -> int:
    """The adaptation field's flag byte of the packet at ``pos`` (0 when it has none):
    ``0x80`` discontinuity_indicator, ``0x40`` random_access_indicator."""
    if buf[pos + 3] & 0x20 and buf[pos + 4]:
        return buf[pos + 5]
    return 0


def payload_offset(buf: bytes | bytearray, pos: int) -> int | None:
    """Where the payload of the packet at ``pos`` starts in ``buf``; ``None`` if it has none."""
    control = buf[pos + 3]
    if not control & 0x10:
        return None
    start = pos + 4
    if control & 0x20:
        start += 1 + buf[pos + 4]
    if start >= pos + PACKET_SIZE:
        return None
    return start


def pes_pts(buf: bytes | bytearray, start: int, end: int) -> int | None:
    """The PTS of the PES header at ``buf[start:end]``, or ``None`` (no PES start, no PTS)."""
    if end - start < 14 or buf[start : start + 3] != b"\x00\x00\x01":
        return None
    if not buf[start + 7] & 0x80:
        return None
    b = buf
    p = start + 9
    return (
        ((b[p] >> 1) & 0x07) << 30
        | b[p + 1] << 22
        | (b[p + 2] >> 1) << 15
        | b[p + 3] << 7
        | b[p + 4] >> 1
    )


def es_data_offset(buf: bytes | bytearray, start: int, end: int) -> int | None:
    """Where the elementary stream data of the PES starting at ``start`` begins, if in ``end``."""
    if end - start < 9 or buf[start : start + 3] != b"\x00\x00\x01":
        return None
    data = start + 9 + buf[start + 8]
    return data if data <= end else None


def signed_pts_delta(later: int, earlier: int) -> int:
    """``later - earlier`` in 90 kHz ticks across a 33-bit wrap: the shortest way round."""
    delta = (later - earlier) % PTS_MODULO
    return delta - PTS_MODULO if delta >= PTS_MODULO // 2 else delta


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
        table.append(crc & 0xFFFFFFFF)
    return table


_CRC_TABLE = _crc_table()


def crc32_mpeg2(data: bytes | bytearray) -> int:
    """CRC-32/MPEG-2, which a PSI section's last four bytes make zero over the whole section."""
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ table[(crc >> 24) ^ byte]
    return crc


@dataclass(frozen=True, slots=True)
class Elementary:
    """One elementary stream of a program: its PID and what the PMT says it carries."""

    pid: int
    stream_type: int
    kind: str
    """``video``, ``audio`` or ``other``."""
    codec: str
    """``h264``, ``hevc``, ``mpeg2``... or ``""`` when we know no way into its frames."""


@dataclass(frozen=True, slots=True)
class Program:
    """A program as its PMT describes it."""

    number: int
    version: int
    pcr_pid: int
    streams: tuple[Elementary, ...]

    @property
    def video(self) -> Elementary | None:
        return next((s for s in self.streams if s.kind == "video"), None)

    @property
    def timing(self) -> Elementary | None:
        """The stream whose PTS times the segments: the video, else the first audio."""
        return self.video or next((s for s in self.streams if s.kind == "audio"), None)


_VIDEO = {0x01: "mpeg2", 0x02: "mpeg2", 0x10: "", 0x1B: "h264", 0x24: "hevc", 0x42: "", 0xEA: ""}
_AUDIO = {0x03, 0x04, 0x0F, 0x11, 0x81, 0x87}
_AUDIO_DESCRIPTORS = {0x6A, 0x7A, 0x7B, 0x7C}  # AC-3, E-AC-3, DTS, AAC in private data


def _section(data: bytes, table_id: int) -> bytes | None:
    """The section of ``table_id`` at the start of ``data``, CRC checked, without its CRC."""
    if len(data) < 12 or data[0] != table_id or not data[1] & 0x80:
        return None
    length = ((data[1] & 0x0F) << 8) | data[2]
    if length < 9 or 3 + length > len(data):
        return None
    section = data[: 3 + length]
    if crc32_mpeg2(section):
        return None
    if not section[5] & 0x01:  # current_next_indicator: a table not yet in force
        return None
    return section[:-4]


def parse_pat(data: bytes) -> dict[int, int] | None:
    """Program number → PMT PID, from a PAT section (``None`` if it is not a valid one)."""
    section = _section(data, 0x00)
    if section is None:
        return None
    programs: dict[int, int] = {}
    for pos in range(8, len(section) - 3, 4):
        number = (section[pos] << 8) | section[pos + 1]
        if number:  # program 0 names the network PID
            programs[number] = ((section[pos + 2] & 0x1F) << 8) | section[pos + 3]
    return programs


def parse_pmt(data: bytes) -> Program | None:
    """The program a PMT section describes (``None`` if it is not a valid one)."""
    section = _section(data, 0x02)
    if section is None:
        return None
    number = (section[3] << 8) | section[4]
    version = (section[5] >> 1) & 0x1F
    pcr_pid = ((section[8] & 0x1F) << 8) | section[9]
    pos = 12 + (((section[10] & 0x0F) << 8) | section[11])
    streams = []
    while pos + 5 <= len(section):
        stream_type = section[pos]
        pid = ((section[pos + 1] & 0x1F) << 8) | section[pos + 2]
        info_length = ((section[pos + 3] & 0x0F) << 8) | section[pos + 4]
        descriptors = section[pos + 5 : pos + 5 + info_length]
        pos += 5 + info_length
        if stream_type in _VIDEO:
            streams.append(Elementary(pid, stream_type, "video", _VIDEO[stream_type]))
        elif stream_type in _AUDIO or (
            stream_type == 0x06 and _descriptor_tags(descriptors) & _AUDIO_DESCRIPTORS
        ):
            streams.append(Elementary(pid, stream_type, "audio", ""))
        else:
            streams.append(Elementary(pid, stream_type, "other", ""))
    return Program(number, version, pcr_pid, tuple(streams))


def _descriptor_tags(data: bytes) -> set[int]:
    tags = set()
    pos = 0
    while pos + 2 <= len(data):
        tags.add(data[pos])
        pos += 2 + data[pos + 1]
    return tags


class PsiAssembler:
    """Gathers one PID's PSI section across packets, keeping the packets that carried it."""

    __slots__ = ("_data", "_need", "_packets")

    MAX_SECTION = 1024 + 3

    def __init__(self) -> None:
        self._data = bytearray()
        self._packets = bytearray()
        self._need = 0

    @property
    def pending(self) -> bool:
        return bool(self._packets)

    def push(self, buf: bytes | bytearray, pos: int) -> tuple[bytes, bytes] | None:
        """Take the packet at ``pos``; a section it completes comes back with its packets."""
        start = payload_offset(buf, pos)
        end = pos + PACKET_SIZE
        if start is None:
            return None
        if buf[pos + 1] & 0x40:  # payload_unit_start: a pointer field, then a new section
            start += 1 + buf[start]
            if start + 3 > end:
                self._reset()
                return None
            self._data = bytearray(buf[start:end])
            self._packets = bytearray(buf[pos:end])
            self._need = 3 + (((buf[start + 1] & 0x0F) << 8) | buf[start + 2])
        elif self._packets:
            self._data += buf[start:end]
            self._packets += buf[pos:end]
        else:
            return None
        if len(self._data) >= self._need:
            done = (bytes(self._data[: self._need]), bytes(self._packets))
            self._reset()
            return done
        if self._need > self.MAX_SECTION:
            self._reset()
        return None

    def _reset(self) -> None:
        self._data = bytearray()
        self._packets = bytearray()
        self._need = 0
