"""Following a transport stream's program: its PAT and the first program's PMT. Pure, no I/O.

The packets that carried the latest PAT and PMT are kept as they came, so a segment can open with
them: a copy of the last PAT (continuity counter *n*) is followed in the stream by the next one
(*n* + 1), so the copy does not break the counters.
"""

from __future__ import annotations

from .ts_packets import PAT_PID, Program, PsiAssembler, parse_pat, parse_pmt

__all__ = ["ProgramTracker"]


class ProgramTracker:
    """The PAT and the PMT of the PAT's first program, kept up to date packet by packet."""

    __slots__ = (
        "_assemblers",
        "_number",
        "_pat_packets",
        "_pat_section",
        "_pmt_packets",
        "_pmt_section",
        "open",
        "pmt_pid",
        "program",
    )

    def __init__(self) -> None:
        self._assemblers: dict[int, PsiAssembler] = {}
        self.open = False
        """A section has begun and not ended yet: the packets that follow may carry its rest."""
        self._pat_section = b""
        self._pat_packets = b""
        self._pmt_section = b""
        self._pmt_packets = b""
        self._number = -1
        self.pmt_pid = -1
        self.program: Program | None = None

    @property
    def head(self) -> bytes:
        """The packets of the latest PAT and PMT, to open a segment with."""
        return self._pat_packets + self._pmt_packets

    def push(self, buf: bytes, pos: int, pid: int) -> Program | None:
        """Take the packet at ``pos`` (of the PAT's PID or the PMT's). A PMT that describes
        other elementary streams than the last one (or the first PMT) comes back."""
        assembler = self._assemblers.get(pid)
        if assembler is None:
            assembler = self._assemblers[pid] = PsiAssembler()
        done = assembler.push(buf, pos)
        self.open = any(a.pending for a in self._assemblers.values())
        if done is None:
            return None
        section, packets = done
        if pid == PAT_PID:
            self._on_pat(section, packets)
        if pid == self.pmt_pid:  # one PID may carry both
            return self._on_pmt(section, packets)
        return None

    def abandon(self) -> None:
        """Give up the sections begun (their rest never came)."""
        self._assemblers.clear()
        self.open = False

    def _on_pat(self, section: bytes, packets: bytes) -> None:
        if section != self._pat_section:
            programs = parse_pat(section)
            if not programs:
                return
            self._pat_section = section
            number, pmt_pid = next(iter(programs.items()))
            if (number, pmt_pid) != (self._number, self.pmt_pid):
                self._number, self.pmt_pid = number, pmt_pid
                self._pmt_section = self._pmt_packets = b""
                self._assemblers = {PAT_PID: self._assemblers[PAT_PID]}
                self.open = any(a.pending for a in self._assemblers.values())
        self._pat_packets = packets

    def _on_pmt(self, section: bytes, packets: bytes) -> Program | None:
        if section[0] != 0x02:  # another table on the PMT's PID
            return None
        changed = None
        if section != self._pmt_section:
            program = parse_pmt(section)
            if program is None or program.number != self._number:
                return None
            self._pmt_section = section
            if self.program is None or self.program.streams != program.streams:
                changed = program
            self.program = program
        self._pmt_packets = packets
        return changed
