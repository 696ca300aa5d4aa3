"""MPEG-TS made by ffmpeg, and what ffprobe and a byte-level read say about TS bytes.

For tests of anything that produces TS segments: :func:`make_ts` writes a short stream for given
codecs; :func:`segment_problems` says what keeps a segment from being one a player can start on
(PAT, then PMT, then a keyframe first); :func:`probe_packets` lists a TS's packets as ffprobe
reads them (stream type, keyframe flag, PTS).
"""

from __future__ import annotations

import itertools
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "PACKET_SIZE",
    "PTS_MODULO",
    "Probed",
    "make_ts",
    "packet_pids",
    "probe_packets",
    "pts_span",
    "segment_problems",
    "strip_random_access",
]

PACKET_SIZE = 188
PTS_MODULO = 1 << 33
_VIDEO = {
    "h264": ["-c:v", "libx264", "-preset", "ultrafast", "-sc_threshold", "0"],
    "hevc": [
        "-c:v",
        "libx265",
        "-preset",
        "ultrafast",
        "-x265-params",
        "log-level=error:scenecut=0",
    ],
    "mpeg2": ["-c:v", "mpeg2video", "-sc_threshold", "0"],
}
_AUDIO = {"aac": ["-c:a", "aac"], "ac3": ["-c:a", "ac3"], "mp2": ["-c:a", "mp2"]}


def make_ts(
    path: Path,
    *,
    video: str | None = "h264",
    audio: str | None = "aac",
    seconds: float = 6.0,
    fps: int = 25,
    gop: int = 30,
    size: str = "160x90",
    video_bitrate: str = "150k",
    offset: float = 0.0,
    extra: tuple[str, ...] = (),
) -> bytes:
    """A ``seconds`` long TS written to ``path`` (and returned): ``video`` (``h264``, ``hevc``,
    ``mpeg2`` or None) with a keyframe every ``gop`` frames, ``audio`` (``aac``, ``ac3``, ``mp2``
    or None), its timestamps starting ``offset`` seconds in (near 95443.7 s they wrap)."""
    command = ["ffmpeg", "-v", "error", "-y"]
    if video:
        command += ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}"]
    if audio:
        command += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    command += ["-t", str(seconds)]
    if video:
        command += [*_VIDEO[video], "-g", str(gop), "-b:v", video_bitrate, "-pix_fmt", "yuv420p"]
        if video == "hevc":
            command[command.index("log-level=error:scenecut=0")] += f":keyint={gop}"
    if audio:
        command += [*_AUDIO[audio], "-b:a", "64k"]
    if offset:
        command += ["-output_ts_offset", str(offset)]
    command += [*extra, "-f", "mpegts", str(path)]
    subprocess.run(command, check=True, timeout=120)
    return path.read_bytes()


def packet_pids(data: bytes) -> list[int]:
    return [
        ((data[pos + 1] & 0x1F) << 8) | data[pos + 2] for pos in range(0, len(data), PACKET_SIZE)
    ]


def strip_random_access(data: bytes) -> bytes:
    """``data`` with every packet's ``random_access_indicator`` cleared, as many streams are."""
    out = bytearray(data)
    for pos in range(0, len(out) - PACKET_SIZE + 1, PACKET_SIZE):
        if out[pos] == 0x47 and out[pos + 3] & 0x20 and out[pos + 4]:
            out[pos + 5] &= ~0x40 & 0xFF
    return bytes(out)


@dataclass(frozen=True, slots=True)
class Probed:
    """One packet as ffprobe reads it."""

    kind: str
    """``video`` or ``audio``."""
    codec: str
    keyframe: bool
    pts: int | None
    """90 kHz ticks, as written in the stream (modulo 2**33)."""
    duration: int | None


def probe_packets(data: bytes) -> list[Probed]:
    """Every packet ffprobe finds in the TS ``data``, in file order."""
    result = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-of",
            "json",
            "-show_entries",
            "packet=stream_index,pts,duration,flags:stream=index,codec_type,codec_name",
            "-i",
            "pipe:0",
        ],
        input=data,
        capture_output=True,
        check=True,
        timeout=60,
    )
    found = json.loads(result.stdout)
    streams = {s["index"]: s for s in found.get("streams", [])}
    rows = []
    for packet in found.get("packets", []):
        stream = streams[packet["stream_index"]]
        pts = packet.get("pts")
        rows.append(
            Probed(
                kind=stream.get("codec_type", ""),
                codec=stream.get("codec_name", ""),
                keyframe="K" in packet.get("flags", ""),
                pts=None if pts is None else int(pts) % PTS_MODULO,
                duration=packet.get("duration"),
            )
        )
    return rows


def pts_span(packets: list[Probed], kind: str) -> tuple[int, int]:
    """The PTS span (first presented to last presented plus one frame) of the ``kind`` packets,
    in ticks, across a 33-bit wrap; and one frame's duration."""
    rows = [p for p in packets if p.kind == kind and p.pts is not None]
    if not rows:
        return 0, 0
    first = rows[0].pts
    assert first is not None
    offsets = []
    for row in rows:
        assert row.pts is not None
        delta = (row.pts - first) % PTS_MODULO
        offsets.append(delta - PTS_MODULO if delta >= PTS_MODULO // 2 else delta)
    frame = next((int(row.duration) for row in rows if row.duration), 0)
    if not frame:  # no durations (ffprobe knows none before a keyframe): the closest two PTS
        ordered = sorted(offsets)
        frame = min((b - a for a, b in itertools.pairwise(ordered) if b > a), default=0)
    return max(offsets) - min(offsets) + frame, frame


def segment_problems(
    segment: bytes, *, keyframe: bool = True, probed: list[Probed] | None = None
) -> list[str]:
    """Why ``segment`` is not a segment a player can start on: whole packets, a PAT first, the
    PMT it names second and (with ``keyframe``) a keyframe as the first video ffprobe reads
    (the first audio when there is no video). ``probed``: its :func:`probe_packets`, if known."""
    problems = []
    if not segment or len(segment) % PACKET_SIZE or segment[::PACKET_SIZE].strip(b"\x47"):
        return ["not whole 188-byte packets"]
    pids = packet_pids(segment)
    start = 4 + (1 + segment[4] if segment[3] & 0x20 else 0)
    table = start + 1 + segment[start]  # after the pointer field
    if pids[0] != 0 or not segment[1] & 0x40 or segment[table] != 0x00:
        problems.append(f"first packet is PID {pids[0]:#x}, not a PAT")
    else:
        pmt_pid = ((segment[table + 10] & 0x1F) << 8) | segment[table + 11]
        if len(pids) < 2 or pids[1] != pmt_pid:
            problems.append(f"second packet is not the PMT (PID {pmt_pid:#x})")
    if keyframe:
        packets = probe_packets(segment) if probed is None else probed
        video = [p for p in packets if p.kind == "video"]
        firsts = video[:1] or [p for p in packets if p.kind == "audio"][:1]
        if not firsts:
            problems.append("ffprobe finds no media")
        elif not firsts[0].keyframe:
            problems.append(f"the first {firsts[0].kind} packet is not a keyframe")
    return problems
