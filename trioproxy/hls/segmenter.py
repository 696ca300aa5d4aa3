"""Cutting an engine's continuous MPEG-TS into HLS segments of our own. Pure, no I/O, no Trio.

:class:`Segmenter` is fed the bytes as they arrive, in any chunking, and answers with events
(:class:`Fed`): the whole packets the input completed, and the segments (:class:`Cut`) it
finished. It reads the PAT and the first program's PMT (and follows a change of either), times
the segments by the PTS of the program's video (else its first audio), and cuts

- at a random-access point of the video (the adaptation field's ``random_access_indicator``,
  else an IDR / IRAP found in the PES, see :mod:`.keyframes`) once a segment lasts ``target``
  seconds, or earlier when waiting for the next one would make it too long;
- anywhere (a *force-cut*) before a segment would last longer than what
  :attr:`~Segmenter.target_duration` rounds to, so a stream that sends keyframes rarely or never
  still makes bounded segments;
- audio-only programs by time, at a PES start;
- at a timebase change (``discontinuity_indicator``, a PTS jump, a new PMT, a new upstream
  session), marking the next segment ``discontinuity``.

Every segment opens with the current PAT and PMT packets, then its media from the cut. Durations
come from the PTS (the next segment's first PTS minus this one's, across the 33-bit wrap), never
from the wall clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .keyframes import KeyframeScan
from .mpegts import PACKET_SIZE
from .ts_align import PacketAligner
from .ts_packets import (
    PAT_PID,
    Elementary,
    Program,
    adaptation_flags,
    es_data_offset,
    payload_offset,
    pes_pts,
    signed_pts_delta,
)
from .ts_program import ProgramTracker

__all__ = ["Cut", "Fed", "Segmenter"]

CLOCK = 90_000
"""PTS ticks per second."""
JUMP_AHEAD = 2 * CLOCK
"""A PTS step forward beyond this (between two PES of the timing stream) is a timebase change."""
JUMP_BACK = 1 * CLOCK
"""A PTS step back beyond this is one too (decode order steps back only a few frames)."""
SCAN_PACKETS = 32
"""Packets of one video PES read for its first picture before it counts as no keyframe."""
PSI_PACKETS = 2048
"""Packets read one by one for the rest of a PSI section before it is given up."""
MAX_SEGMENT_BYTES = 32 << 20
"""A segment whose timing stream shows no PTS for this long is dropped, not grown."""
_PUSI = bytes(byte & 0x40 for byte in range(256))
"""Maps a packet's second byte to its payload_unit_start_indicator."""


@dataclass(frozen=True, slots=True)
class Cut:
    """One finished segment."""

    data: bytes
    """PAT, PMT, then media from a random-access point (or, audio-only / force-cut, from where
    it was cut)."""
    duration: float
    """Seconds, from PTS; wall time never."""
    discontinuity: bool
    """The first segment after a timebase change or after :meth:`Segmenter.new_session`."""
    keyframe: bool
    """Opens on a random-access point."""


@dataclass(frozen=True, slots=True)
class Fed:
    """What one :meth:`Segmenter.feed` produced."""

    packets: bytes
    """The whole 188-byte packets the input completed, in order, garbage and partial packets
    left out: what TS players may be sent now."""
    cuts: list[Cut]
    """Segments the input completed, oldest first."""


class Segmenter:
    """Cuts one channel's MPEG-TS into segments of about ``target`` seconds."""

    def __init__(self, target: float = 2.0) -> None:
        if not math.isfinite(target) or target <= 0:
            raise ValueError(f"invalid segment target {target!r}")
        self.target_duration: int = max(1, math.ceil(target * 1.5))
        """``#EXT-X-TARGETDURATION``, fixed for the segmenter's life: every segment's duration
        rounds to it or less."""
        self._target = round(target * CLOCK)
        self._limit = self.target_duration * CLOCK + CLOCK // 2
        """Ticks a segment must stay below to round to the target duration or less."""
        self._aligner = PacketAligner()
        self._cuts: list[Cut] = []
        self._abs = 0
        """Bytes of whole packets taken so far: the position of everything below."""
        self._seg = bytearray()
        self._seg_abs = 0
        self._seg_head = b""
        self._in_segment = False
        self._seg_key = False
        self._seg_disc = False
        self._seg_start = 0
        self._seg_max = 0
        self._disc_pending = False
        self._began = False
        self._media_seen = False
        self._reset_stream()

    def _reset_stream(self) -> None:
        """Forget what was learnt of the stream: PSI, timing, keyframe scan."""
        self._psi = ProgramTracker()
        self._psi_wait = 0
        self._timing: Elementary | None = None
        self._timing_pid = -1
        self._reset_timing()

    def _reset_timing(self) -> None:
        self._last33: int | None = None
        self._ext = 0
        self._wait_since = 0
        self._frame = 0
        self._step = 0
        self._prev_step = 0
        self._last_key: int | None = None
        self._gop = 0
        self._flag_disc = False
        self._scan: KeyframeScan | None = None
        self._scan_at = 0
        self._scan_pts = 0
        self._scan_disc = False
        self._scan_left = 0

    # -- the interface ------------------------------------------------------------------------

    def feed(self, data: bytes) -> Fed:
        packets = self._aligner.feed(data)
        if packets:
            self._take(packets)
        cuts, self._cuts = self._cuts, []
        return Fed(packets, cuts)

    def new_session(self) -> None:
        """A new upstream session follows. The segment in progress is dropped (call
        :meth:`end` first to keep it); the next segment is marked ``discontinuity``."""
        self._aligner.reset()
        self._drop_segment()
        self._reset_stream()
        self._media_seen = False

    def end(self) -> Cut | None:
        """The stream ended: the segment in progress, if any, with its duration from its PTS
        (its last frame's end estimated from the frame rate). Feeding more begins afresh."""
        last = self._aligner.flush()
        if self._in_segment:
            self._seg += last
            self._abs += len(last)
            self._scan = None
            self._close(self._abs, self._estimated_end())
        cut = self._cuts.pop() if self._cuts else None
        self._cuts = []
        self._drop_segment()
        self._reset_timing()
        return cut

    @property
    def media_seen(self) -> bool:
        """Any media (a PES start, not PSI or null packets) arrived since the segmenter began
        or the last :meth:`new_session`."""
        return self._media_seen

    @property
    def head(self) -> bytes:
        """The segment in progress so far: PAT, PMT, media from its random-access point."""
        return self._seg_head + self._seg if self._in_segment else b""

    # -- packets ------------------------------------------------------------------------------

    def _take(self, buf: bytes) -> None:
        base = self._abs
        self._seg += buf
        self._abs += len(buf)
        starts = buf[1::PACKET_SIZE].translate(_PUSI)
        count = len(starts)
        index = 0
        while index < count:
            if self._scan is None:
                if self._psi.open:
                    self._psi_wait += 1
                    if self._psi_wait > PSI_PACKETS:
                        self._psi.abandon()
                if not self._psi.open:
                    self._psi_wait = 0
                    index = starts.find(0x40, index)  # only the packets that start a unit matter
                    if index < 0:
                        break
            self._packet(buf, index * PACKET_SIZE, base)
            index += 1
        self._trim()

    def _packet(self, buf: bytes, pos: int, base: int) -> None:
        flags = buf[pos + 1]
        if flags & 0x80:  # transport_error_indicator: the packet is known to be damaged
            return
        pid = ((flags & 0x1F) << 8) | buf[pos + 2]
        if pid == self._timing_pid:
            if flags & 0x40:
                self._pes_start(buf, pos, base + pos)
            elif self._scan is not None:
                self._scan_more(buf, pos)
        elif pid == PAT_PID or pid == self._psi.pmt_pid:
            known = self._psi.program
            program = self._psi.push(buf, pos, pid)
            if program is not None:
                self._new_program(program, base + pos, changed=known is not None)
        elif flags & 0x40 and not self._media_seen:
            start = payload_offset(buf, pos)
            if start is not None and buf[start : start + 3] == b"\x00\x00\x01":
                self._media_seen = True

    def _new_program(self, program: Program, at: int, *, changed: bool) -> None:
        """Other elementary streams from here on: a timebase change for the segments."""
        if changed:
            self._scan = None
            if self._in_segment:
                self._close(at, self._estimated_end())
            self._mark_discontinuity()
        self._reset_timing()
        self._timing = program.timing
        self._timing_pid = self._timing.pid if self._timing is not None else -1

    # -- the timing stream's PES --------------------------------------------------------------

    def _pes_start(self, buf: bytes, pos: int, at: int) -> None:
        if self._scan is not None:
            self._decided(False)  # the last PES showed no picture
        start = payload_offset(buf, pos)
        if start is None:
            return
        end = pos + PACKET_SIZE
        pts = pes_pts(buf, start, end)
        self._media_seen = True
        flags = adaptation_flags(buf, pos)
        disc = bool(flags & 0x80) or self._flag_disc
        if pts is None:
            self._flag_disc = disc
            return
        self._flag_disc = False
        timing = self._timing
        assert timing is not None
        if timing.kind != "video" or flags & 0x40:
            self._at_pes(at, pts, True, disc)
            return
        scan = KeyframeScan(timing.codec)
        data = es_data_offset(buf, start, end)
        verdict = scan.feed(buf[data:end]) if data is not None else None
        if verdict is None:
            self._scan = scan
            self._scan_at, self._scan_pts, self._scan_disc = at, pts, disc
            self._scan_left = SCAN_PACKETS
            return
        self._at_pes(at, pts, verdict, disc)

    def _scan_more(self, buf: bytes, pos: int) -> None:
        assert self._scan is not None
        start = payload_offset(buf, pos)
        if start is None:
            return
        verdict = self._scan.feed(buf[start : pos + PACKET_SIZE])
        self._scan_left -= 1
        if verdict is not None or not self._scan_left:
            self._decided(bool(verdict))

    def _decided(self, key: bool) -> None:
        self._scan = None
        self._at_pes(self._scan_at, self._scan_pts, key, self._scan_disc)

    def _at_pes(self, at: int, pts: int, key: bool, disc: bool) -> None:
        """A PES of the timing stream starts at ``at`` with ``pts``; ``key`` if a random-access
        point. Decides whether a segment ends and another begins there."""
        audio = self._timing is not None and self._timing.kind != "video"
        if self._last33 is None:  # the first PTS: nothing to jump from
            delta, jump = 0, True
        else:
            delta = signed_pts_delta(pts, self._last33)
            jump = disc or delta > JUMP_AHEAD or delta < -JUMP_BACK
        self._last33 = pts
        if jump:
            if self._in_segment:
                self._close(at, self._estimated_end())
                self._mark_discontinuity()
            elif delta or disc:
                self._mark_discontinuity()
            self._ext = self._wait_since = pts
            self._step = self._prev_step = 0
            self._last_key = pts if key else None
            if key:
                self._begin(at, key)
            return
        now = self._ext = self._ext + delta
        if delta:  # in decode order a step back is as close as a frame gets too
            self._frame = min(self._frame, abs(delta)) if self._frame else abs(delta)
            self._step = max(self._step, delta)
        if key and not audio:
            if self._last_key is not None:
                self._gop = now - self._last_key
            self._last_key = now
        if not self._in_segment:
            if key or now - self._wait_since >= self._limit:
                self._begin(at, key)
            return
        elapsed = now - self._seg_start
        step = max(self._step, self._prev_step)
        if elapsed >= self._limit:  # a step too big to foresee: end at the last frame's end
            cut = True
            elapsed = self._estimated_end()
        elif audio:
            cut = elapsed + step // 2 >= self._target
        elif key:
            cut = (
                elapsed + self._frame // 2 >= self._target
                or not self._seg_key
                or (elapsed * 2 >= self._target and elapsed + self._gop >= self._limit)
            )
        else:
            cut = elapsed + step >= self._limit
        if cut and elapsed > 0:
            self._close(at, elapsed)
            self._begin(at, key)
        else:
            self._seg_max = max(self._seg_max, now)

    # -- segments -----------------------------------------------------------------------------

    def _begin(self, at: int, key: bool) -> None:
        if at > self._seg_abs:
            del self._seg[: at - self._seg_abs]
            self._seg_abs = at
        self._seg_head = self._psi.head
        self._in_segment = True
        self._seg_key = key
        self._seg_disc = self._disc_pending
        self._disc_pending = False
        self._began = True
        self._seg_start = self._seg_max = self._ext
        self._prev_step, self._step = self._step, 0

    def _close(self, at: int, ticks: int) -> None:
        size = at - self._seg_abs
        data = b"".join((self._seg_head, memoryview(self._seg)[:size]))
        del self._seg[:size]
        self._seg_abs = at
        self._in_segment = False
        self._cuts.append(Cut(data, max(ticks, 0) / CLOCK, self._seg_disc, self._seg_key))

    def _estimated_end(self) -> int:
        """Ticks from the segment's start to its last frame's end, when no next PTS says it."""
        return min(self._seg_max + self._frame - self._seg_start, self._limit - 1)

    def _mark_discontinuity(self) -> None:
        self._disc_pending = self._began

    def _drop_segment(self) -> None:
        if self._in_segment or self._began:
            self._mark_discontinuity()
        self._in_segment = False
        self._scan = None
        self._seg.clear()
        self._seg_abs = self._abs

    def _trim(self) -> None:
        """Hold only the bytes a segment may still need."""
        if self._in_segment:
            if len(self._seg) > MAX_SEGMENT_BYTES:  # no PTS for that long: nothing to time it by
                self._drop_segment()
            return
        keep = self._scan_at if self._scan is not None else self._abs
        if keep > self._seg_abs:
            del self._seg[: keep - self._seg_abs]
            self._seg_abs = keep
