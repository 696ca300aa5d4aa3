"""Cut a continuous MPEG-TS stream into HLS segments. Pure: no I/O, no Trio.

A minimal segmenter: it resyncs on the sync byte, remembers the last PAT and PMT, and cuts
before a video PES that starts at a random-access point (``random_access_indicator``, or an
H.264 IDR / H.265 IRAP in the PES's first packet) once the segment in progress holds ``target``
seconds of PTS. A timestamp that goes back, or jumps ahead by more than a minute, cuts there and
marks the next segment as a discontinuity.

Fed bytes in any chunking, it keeps its state in the object and returns what each input
completed (:class:`Fed`), the way h11's ``Connection.receive_data`` does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Cut", "Fed", "Segmenter"]

PACKET = 188
SYNC = 0x47
CLOCK = 90_000
WRAP = 1 << 33
JUMP = 60 * CLOCK
"""A PTS step larger than this (forward), or any step back, is a timebase change."""
VIDEO_TYPES = {0x01, 0x02, 0x10, 0x1B, 0x24, 0x42, 0xEA}


@dataclass(frozen=True, slots=True)
class Cut:
    data: bytes
    """One whole segment: PAT, PMT, then media from a random-access point."""
    duration: float
    """Seconds, from PTS."""
    discontinuity: bool
    """The first segment after a timebase change or after :meth:`Segmenter.new_session`."""
    keyframe: bool


@dataclass(frozen=True, slots=True)
class Fed:
    packets: bytes
    """Whole 188-byte packets this input completed, garbage left out."""
    cuts: list[Cut]
    """Segments this input completed, oldest first."""


def _pts(packet: bytes, payload: int) -> int | None:
    """The PTS of the PES starting at ``payload``, if it carries one."""
    if packet[payload : payload + 3] != b"\x00\x00\x01" or len(packet) < payload + 14:
        return None
    if not 0xC0 <= packet[payload + 3] <= 0xEF or not packet[payload + 7] & 0x80:
        return None
    at = payload + 9
    return (
        ((packet[at] >> 1) & 0x07) << 30
        | packet[at + 1] << 22
        | (packet[at + 2] >> 1) << 15
        | packet[at + 3] << 7
        | packet[at + 4] >> 1
    )


def _keyframe(packet: bytes, payload: int, random_access: bool) -> bool:
    if random_access:
        return True
    body = packet[payload + 9 + packet[payload + 8] :] if payload + 9 < PACKET else b""
    at = body.find(b"\x00\x00\x01")
    while at >= 0 and at + 3 < len(body):
        nal = body[at + 3]
        if nal & 0x1F in (5, 7) or 16 <= (nal >> 1) & 0x3F <= 21:
            return True
        at = body.find(b"\x00\x00\x01", at + 3)
    return False


class Segmenter:
    """One channel's MPEG-TS, cut into segments of about ``target`` seconds."""

    def __init__(self, target: float = 2.0) -> None:
        self.target = target
        self.target_duration = max(1, math.ceil(target))
        self._rest = b""
        self._pat = b""
        self._pmt = b""
        self._pmt_pid: int | None = None
        self._video_pid: int | None = None
        self._clock_pid: int | None = None
        self._media: list[bytes] = []
        self._start_pts: int | None = None
        self._last_pts: int | None = None
        self._keyframe = False
        self._discontinuity = False
        self._media_seen = False

    @property
    def head(self) -> bytes:
        return self._pat + self._pmt + b"".join(self._media)

    @property
    def media_seen(self) -> bool:
        return self._media_seen

    def new_session(self) -> None:
        self._rest = b""
        self._media = []
        self._start_pts = self._last_pts = None
        self._discontinuity = True

    def end(self) -> Cut | None:
        if not self._media or self._start_pts is None or self._last_pts is None:
            return None
        return self._cut((self._last_pts - self._start_pts) % WRAP)

    def feed(self, data: bytes) -> Fed:
        buffer = self._rest + data
        packets: list[bytes] = []
        cuts: list[Cut] = []
        at = 0
        while len(buffer) - at >= PACKET:
            if buffer[at] != SYNC or (len(buffer) - at > PACKET and buffer[at + PACKET] != SYNC):
                at += 1
                continue
            packet = buffer[at : at + PACKET]
            at += PACKET
            packets.append(packet)
            cut = self._packet(packet)
            if cut is not None:
                cuts.append(cut)
        self._rest = buffer[at:]
        return Fed(b"".join(packets), cuts)

    def _packet(self, packet: bytes) -> Cut | None:
        pid = ((packet[1] & 0x1F) << 8) | packet[2]
        if pid == 0x1FFF:
            return None
        control = (packet[3] >> 4) & 0x03
        payload = 4
        random_access = False
        if control & 0x02:
            random_access = packet[4] > 0 and bool(packet[5] & 0x40)
            payload += 1 + packet[4]
        start = bool(packet[1] & 0x40) and control & 0x01 and payload < PACKET
        if pid == 0:
            self._pat = packet
            if start:
                self._read_pat(packet, payload)
            return None
        if pid == self._pmt_pid:
            self._pmt = packet
            if start:
                self._read_pmt(packet, payload)
            return None
        cut = None
        if start:
            pts = _pts(packet, payload)
            if pts is not None:
                cut = self._timestamp(pid, pts, _keyframe(packet, payload, random_access))
        if self._start_pts is not None:
            self._media.append(packet)
        return cut

    def _timestamp(self, pid: int, pts: int, keyframe: bool) -> Cut | None:
        self._media_seen = True
        if self._clock_pid is None:
            self._clock_pid = self._video_pid if self._video_pid is not None else pid
        if pid != self._clock_pid:
            return None
        cut = None
        if self._start_pts is None or self._last_pts is None:
            if keyframe or self._video_pid is None:
                self._start_pts, self._keyframe = pts, keyframe
            self._last_pts = pts
            return None
        step = (pts - self._last_pts) % WRAP
        if step > JUMP:  # back, or far ahead: the timebase changed
            cut = self._cut((self._last_pts - self._start_pts) % WRAP)
            self._discontinuity = True
            self._start_pts, self._keyframe = pts, keyframe
        elif (keyframe or self._video_pid is None) and (
            pts - self._start_pts
        ) % WRAP >= self.target * CLOCK:
            cut = self._cut((pts - self._start_pts) % WRAP)
            self._start_pts, self._keyframe = pts, keyframe
        self._last_pts = pts
        return cut

    def _cut(self, ticks: int) -> Cut | None:
        if not self._media:
            return None
        cut = Cut(self.head, ticks / CLOCK, self._discontinuity, self._keyframe)
        self._media = []
        self._discontinuity = False
        return cut

    def _read_pat(self, packet: bytes, payload: int) -> None:
        section = payload + 1 + packet[payload]
        length = ((packet[section + 1] & 0x0F) << 8) | packet[section + 2]
        end = min(PACKET, section + 3 + length - 4)
        for at in range(section + 8, end - 3, 4):
            program = (packet[at] << 8) | packet[at + 1]
            if program:
                self._pmt_pid = ((packet[at + 2] & 0x1F) << 8) | packet[at + 3]
                return

    def _read_pmt(self, packet: bytes, payload: int) -> None:
        section = payload + 1 + packet[payload]
        length = ((packet[section + 1] & 0x0F) << 8) | packet[section + 2]
        end = min(PACKET, section + 3 + length - 4)
        info = ((packet[section + 10] & 0x0F) << 8) | packet[section + 11]
        at = section + 12 + info
        while at + 5 <= end:
            kind = packet[at]
            pid = ((packet[at + 1] & 0x1F) << 8) | packet[at + 2]
            if kind in VIDEO_TYPES:
                if pid != self._video_pid:
                    self._video_pid = self._clock_pid = pid
                return
            at += 5 + (((packet[at + 3] & 0x0F) << 8) | packet[at + 4])
