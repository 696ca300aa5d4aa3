"""Finding whole 188-byte packets in bytes cut anywhere. Pure, no I/O.

A packet is taken when the sync byte opens it and opens the packet after it, so one packet waits
for the next one's first byte. Where that check fails (garbage, or a packet cut short and followed
by the next one), the packet is dropped and the stream is searched for three sync bytes 188 bytes
apart before anything is taken again.
"""

from __future__ import annotations

from .mpegts import PACKET_SIZE, SYNC

__all__ = ["PacketAligner"]

_LOCK = 3
"""Sync bytes in a row, a packet apart, that regain the packet alignment."""


class PacketAligner:
    """Fed bytes in any chunking, gives back the whole packets they complete."""

    __slots__ = ("_buf", "_fed", "_locked", "_taken")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._locked = False
        self._fed = 0
        self._taken = 0

    @property
    def dropped(self) -> int:
        """Bytes left out so far: garbage and packets cut short."""
        return self._fed - self._taken - len(self._buf)

    def reset(self) -> None:
        """Forget the partial packet held: what comes next is a new stream."""
        self._buf.clear()
        self._locked = False

    def flush(self) -> bytes:
        """The stream ended: the last packet, if whole and opening with the sync byte."""
        buf = self._buf
        packet = b""
        if self._locked and len(buf) >= PACKET_SIZE and buf[0] == SYNC:
            packet = bytes(buf[:PACKET_SIZE])
        self._taken += len(packet)
        self.reset()
        return packet

    def feed(self, data: bytes | bytearray | memoryview) -> bytes:
        """The whole packets ``data`` completes, in order."""
        buf = self._buf
        buf += data
        self._fed += len(data)
        size = len(buf)
        pos = 0
        out: list[bytes] = []
        while True:
            if not self._locked:
                found = self._search(buf, pos)
                if found < 0:  # nothing that could start a packet
                    pos = size
                    break
                if found + (_LOCK - 1) * PACKET_SIZE >= size:
                    pos = found  # a candidate not yet confirmed: wait for more
                    break
                pos = found
                self._locked = True
            count = (size - pos - 1) // PACKET_SIZE  # packets whose successor's sync byte is here
            if not count:
                break
            syncs = buf[pos : pos + count * PACKET_SIZE + 1 : PACKET_SIZE]
            if syncs.count(SYNC) == count + 1:
                out.append(bytes(buf[pos : pos + count * PACKET_SIZE]))
                pos += count * PACKET_SIZE
                break
            good = len(syncs) - len(syncs.lstrip(b"\x47"))
            # Packet good - 1 is not followed by a sync byte: cut short or followed by garbage.
            if good > 1:
                out.append(bytes(buf[pos : pos + (good - 1) * PACKET_SIZE]))
            pos += max(good - 1, 0) * PACKET_SIZE + 1
            self._locked = False
        del buf[:pos]
        packets = b"".join(out) if len(out) != 1 else out[0]
        self._taken += len(packets)
        return packets

    def _search(self, buf: bytearray, pos: int) -> int:
        """The first position from ``pos`` with sync bytes a packet apart as far as ``buf``
        goes (up to three); -1 when none."""
        size = len(buf)
        while True:
            found = buf.find(SYNC, pos)
            if found < 0:
                return -1
            probe = found + PACKET_SIZE
            while probe < size and probe <= found + (_LOCK - 1) * PACKET_SIZE:
                if buf[probe] != SYNC:
                    break
                probe += PACKET_SIZE
            else:
                return found
            pos = found + 1
