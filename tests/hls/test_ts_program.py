"""Following PAT and PMT: sections across packets, damaged ones ignored, changes reported."""

from __future__ import annotations

from trioproxy.hls.mpegts import NULL_PACKET, PACKET_SIZE
from trioproxy.hls.ts_packets import crc32_mpeg2, parse_pmt
from trioproxy.hls.ts_program import ProgramTracker


def section(table_id: int, extension: int, body: bytes, version: int = 0) -> bytes:
    length = 5 + len(body) + 4
    head = bytes([table_id, 0xB0 | length >> 8, length & 0xFF, extension >> 8, extension & 0xFF])
    data = head + bytes([0xC1 | version << 1, 0, 0]) + body
    return data + crc32_mpeg2(data).to_bytes(4, "big")


def packets(pid: int, data: bytes) -> list[bytes]:
    """``data`` as one PSI section in packets of ``pid`` (pointer field 0, 0xFF stuffing)."""
    payload = b"\x00" + data
    out = []
    for n, pos in enumerate(range(0, len(payload), PACKET_SIZE - 4)):
        chunk = payload[pos : pos + PACKET_SIZE - 4]
        start = 0x40 if n == 0 else 0
        header = bytes([0x47, start | pid >> 8, pid & 0xFF, 0x10 | n % 16])
        out.append((header + chunk).ljust(PACKET_SIZE, b"\xff"))
    return out


def pat(programs: list[tuple[int, int]]) -> bytes:
    body = b"".join(bytes([n >> 8, n & 0xFF, 0xE0 | pid >> 8, pid & 0xFF]) for n, pid in programs)
    return section(0x00, 1, body)


def pmt(number: int, streams: list[tuple[int, int, bytes]], version: int = 0) -> bytes:
    body = bytes([0xE1, 0x00, 0xF0, 0x00])  # PCR PID 0x100, no program descriptors
    for stream_type, pid, descriptors in streams:
        body += bytes([stream_type, 0xE0 | pid >> 8, pid & 0xFF, 0xF0, len(descriptors)])
        body += descriptors
    return section(0x02, number, body, version)


def push_all(tracker: ProgramTracker, stream: list[bytes]) -> list[object]:
    found = []
    for packet in stream:
        pid = ((packet[1] & 0x1F) << 8) | packet[2]
        if pid in (0, tracker.pmt_pid):
            found.append(tracker.push(packet, 0, pid))
    return [program for program in found if program is not None]


def test_a_pat_across_two_packets_names_the_first_programs_pmt() -> None:
    programs = [(n, 0x1000 + n) for n in range(1, 61)]  # 252 bytes: two packets
    pat_packets = packets(0, pat(programs))
    assert len(pat_packets) == 2
    pmt_packets = packets(0x1001, pmt(1, [(0x1B, 0x100, b""), (0x06, 0x101, b"\x6a\x01\x00")]))
    tracker = ProgramTracker()
    changes = push_all(tracker, [pat_packets[0], NULL_PACKET, pat_packets[1], *pmt_packets])
    assert tracker.pmt_pid == 0x1001
    assert len(changes) == 1
    assert tracker.program is not None
    assert [(s.pid, s.kind, s.codec) for s in tracker.program.streams] == [
        (0x100, "video", "h264"),
        (0x101, "audio", ""),  # AC-3 as private data, known by its descriptor
    ]
    assert tracker.head == b"".join(pat_packets + pmt_packets)


def test_a_damaged_section_is_ignored_and_only_new_streams_count_as_a_change() -> None:
    tracker = ProgramTracker()
    first = pmt(1, [(0x1B, 0x100, b""), (0x0F, 0x101, b"")])
    push_all(tracker, packets(0, pat([(1, 0x1000)])) + packets(0x1000, first))
    damaged = bytearray(packets(0x1000, pmt(1, [(0x24, 0x100, b"")]))[0])
    damaged[20] ^= 0x01
    assert push_all(tracker, [bytes(damaged)]) == []
    assert tracker.program == parse_pmt(first)
    same_streams = pmt(1, [(0x1B, 0x100, b""), (0x0F, 0x101, b"")], version=3)
    assert push_all(tracker, packets(0x1000, same_streams)) == []
    assert tracker.program == parse_pmt(same_streams)
    assert tracker.head.endswith(packets(0x1000, same_streams)[0])  # segments open with it
    other_streams = pmt(1, [(0x24, 0x100, b""), (0x81, 0x101, b"")], version=4)
    assert push_all(tracker, packets(0x1000, other_streams)) == [parse_pmt(other_streams)]
