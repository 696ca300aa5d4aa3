"""Just enough MPEG-TS to loop a recording seamlessly: shift its clocks, continue its counters.

A looped recording restarts its timestamps and continuity counters; players see that as a
broken stream. Shifting PCR/PTS/DTS by the loop's duration and continuing each PID's continuity
counter makes loop ``k`` the seamless continuation of loop ``k - 1``. Pure functions, no I/O.
"""

from __future__ import annotations

from collections import Counter

__all__ = ["PACKET_SIZE", "move_pid", "payload_packets", "shift"]

PACKET_SIZE = 188
_WRAP = 1 << 33  # PTS, DTS and the PCR base are 33-bit counters of a 90 kHz clock


def _packets(data: bytes | bytearray) -> range:
    if len(data) % PACKET_SIZE:
        raise ValueError("not a whole number of 188-byte TS packets")
    for pos in range(0, len(data), PACKET_SIZE):
        if data[pos] != 0x47:
            raise ValueError(f"no TS sync byte at offset {pos}")
    return range(0, len(data), PACKET_SIZE)


def _pid(data: bytes | bytearray, pos: int) -> int:
    return ((data[pos + 1] & 0x1F) << 8) | data[pos + 2]


def payload_packets(data: bytes) -> Counter[int]:
    """Packets that carry a payload, per PID: each one advances that PID's continuity counter."""
    counts: Counter[int] = Counter()
    for pos in _packets(data):
        if data[pos + 3] & 0x10:
            counts[_pid(data, pos)] += 1
    return counts


def _shift_timestamp(out: bytearray, at: int, offset: int) -> None:
    value = (
        ((out[at] >> 1) & 0x07) << 30
        | out[at + 1] << 22
        | (out[at + 2] >> 1) << 15
        | out[at + 3] << 7
        | out[at + 4] >> 1
    )
    value = (value + offset) % _WRAP
    out[at] = (out[at] & 0xF1) | (((value >> 30) & 0x07) << 1)
    out[at + 1] = (value >> 22) & 0xFF
    out[at + 2] = (((value >> 15) & 0x7F) << 1) | 1
    out[at + 3] = (value >> 7) & 0xFF
    out[at + 4] = ((value & 0x7F) << 1) | 1


def _shift_pcr(out: bytearray, at: int, offset: int) -> None:
    base = (
        out[at] << 25 | out[at + 1] << 17 | out[at + 2] << 9 | out[at + 3] << 1 | out[at + 4] >> 7
    )
    base = (base + offset) % _WRAP
    out[at] = (base >> 25) & 0xFF
    out[at + 1] = (base >> 17) & 0xFF
    out[at + 2] = (base >> 9) & 0xFF
    out[at + 3] = (base >> 1) & 0xFF
    out[at + 4] = ((base & 1) << 7) | (out[at + 4] & 0x7F)


def shift(data: bytes, offset: int, counters: dict[int, int]) -> bytes:
    """``data`` with every PCR/PTS/DTS moved ``offset`` ticks (90 kHz) and each PID's continuity
    counter advanced by ``counters[pid]`` (mod 16)."""
    out = bytearray(data)
    for pos in _packets(out):
        pid = _pid(out, pos)
        control = (out[pos + 3] >> 4) & 0x03
        if control & 0x01 and counters.get(pid):
            out[pos + 3] = (out[pos + 3] & 0xF0) | ((out[pos + 3] + counters[pid]) & 0x0F)
        payload = pos + 4
        if control & 0x02:
            length = out[payload]
            if length and out[payload + 1] & 0x10:  # PCR present
                _shift_pcr(out, payload + 2, offset)
            payload += 1 + length
        starts_pes = out[pos + 1] & 0x40 and out[payload : payload + 3] == b"\x00\x00\x01"
        if control & 0x01 and starts_pes and 0xC0 <= out[payload + 3] <= 0xEF:
            flags = out[payload + 7] >> 6
            if flags & 0x02:
                _shift_timestamp(out, payload + 9, offset)
            if flags == 0x03:
                _shift_timestamp(out, payload + 14, offset)
    return bytes(out)


def _crc32_mpeg(data: bytes | bytearray) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def _pmt_pids(data: bytes | bytearray) -> set[int]:
    """The PMT PIDs the PATs in ``data`` name."""
    found: set[int] = set()
    for pos in _packets(data):
        if _pid(data, pos) != 0 or not data[pos + 1] & 0x40:
            continue
        section = pos + 5 + data[pos + 4]
        length = ((data[section + 1] & 0x0F) << 8) | data[section + 2]
        for at in range(section + 8, section + 3 + length - 4, 4):
            if (data[at] << 8) | data[at + 1]:
                found.add(((data[at + 2] & 0x1F) << 8) | data[at + 3])
    return found


def move_pid(data: bytes, old: int, new: int) -> bytes:
    """``data`` with elementary stream ``old`` carried on PID ``new`` instead: its packets
    renumbered and every PMT rewritten to say so, under the next version number (a program
    change, as a broadcaster's remux makes). PMT sections must fit in one packet."""
    out = bytearray(data)
    pmts = _pmt_pids(out)
    for pos in _packets(out):
        pid = _pid(out, pos)
        if pid == old:
            out[pos + 1] = (out[pos + 1] & 0xE0) | (new >> 8)
            out[pos + 2] = new & 0xFF
        if pid not in pmts or not out[pos + 1] & 0x40:
            continue
        section = pos + 5 + out[pos + 4]
        length = ((out[section + 1] & 0x0F) << 8) | out[section + 2]
        end = section + 3 + length - 4
        out[section + 5] = (out[section + 5] & 0xC1) | ((((out[section + 5] >> 1) + 1) & 0x1F) << 1)
        if (((out[section + 8] & 0x1F) << 8) | out[section + 9]) == old:  # PCR PID
            out[section + 8] = (out[section + 8] & 0xE0) | (new >> 8)
            out[section + 9] = new & 0xFF
        at = section + 12 + (((out[section + 10] & 0x0F) << 8) | out[section + 11])
        while at + 5 <= end:
            if (((out[at + 1] & 0x1F) << 8) | out[at + 2]) == old:
                out[at + 1] = (out[at + 1] & 0xE0) | (new >> 8)
                out[at + 2] = new & 0xFF
            at += 5 + (((out[at + 3] & 0x0F) << 8) | out[at + 4])
        out[end : end + 4] = _crc32_mpeg(out[section:end]).to_bytes(4, "big")
    return bytes(out)
