"""CPU cost of reading and segmenting one channel's MPEG-TS: ``python -m benchmarks.segmenter``.

ffmpeg makes a 4 Mbit/s constant-rate transport stream (H.264 640x360 with film grain so the
encoder cannot make it small, AAC, null packets up to the mux rate, as broadcasts are); the
segmenter is fed it in reads of a fixed size, as the upstream reader would, several times. The
figure is the CPU time this process spent per second of stream, as a share of one core
(target: ≤ 1 % for a 4 Mbit/s channel), median of the runs and its spread. The packet aligner
alone (finding whole packets, no parsing) is measured the same way as a reference.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from trioproxy.hls.segmenter import Segmenter
from trioproxy.hls.ts_align import PacketAligner

from .report import Target, base_parser, begin, write_result

NAME = "segmenter"
MUX_RATE = 4_000_000
READS = (8 * 1024, 64 * 1024)


def make_stream(path: Path, seconds: int) -> bytes:
    command = (
        "ffmpeg -v error -y"
        " -f lavfi -i testsrc2=size=640x360:rate=25,noise=alls=40:allf=t"
        " -f lavfi -i sine=frequency=440:sample_rate=48000"
        f" -t {seconds}"
        " -c:v libx264 -preset ultrafast -g 50 -b:v 3400k -maxrate 3400k -bufsize 1700k"
        " -c:a aac -b:a 128k"
        f" -muxrate {MUX_RATE} -f mpegts"
    ).split()
    subprocess.run([*command, str(path)], check=True, timeout=600)
    return path.read_bytes()


def segment(data: bytes, read: int) -> int:
    seg = Segmenter()
    cuts = 0
    for pos in range(0, len(data), read):
        cuts += len(seg.feed(data[pos : pos + read]).cuts)
    return cuts + (seg.end() is not None)


def align(data: bytes, read: int) -> int:
    aligner = PacketAligner()
    return sum(len(aligner.feed(data[pos : pos + read])) for pos in range(0, len(data), read))


def cpu_seconds(work: Callable[[bytes, int], int], data: bytes, read: int) -> float:
    began = time.process_time()
    work(data, read)
    return time.process_time() - began


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(NAME, __doc__ or "")
    parser.add_argument("--seconds", type=int, default=None, help="stream length (30; quick 10)")
    args = parser.parse_args(argv)
    seconds = args.seconds or (10 if args.quick else 30)
    runs = args.runs or (3 if args.quick else 5)
    started = begin()
    with tempfile.TemporaryDirectory() as folder:
        data = make_stream(Path(folder) / "stream.ts", seconds)
    stream_seconds = len(data) * 8 / MUX_RATE
    rows: list[list[Any]] = []
    results: dict[str, Any] = {}
    figure = float("nan")
    for label, work in (("segmenter", segment), ("packet aligner only", align)):
        for read in READS:
            samples = [cpu_seconds(work, data, read) for _ in range(runs)]
            shares = [100 * s / stream_seconds for s in samples]
            median = statistics.median(shares)
            per_kb = 1e6 * statistics.median(samples) / (len(data) / 1024)
            rows.append([label, read // 1024, median, min(shares), max(shares), per_kb])
            results[f"{label} {read // 1024} KiB"] = {"percent_of_a_core": shares}
            if work is segment:
                figure = median if figure != figure else max(figure, median)
    cuts = segment(data, READS[-1])
    print(
        f"{len(data) / 1e6:.1f} MB, {stream_seconds:.1f} s of stream at "
        f"{MUX_RATE / 1e6:.0f} Mbit/s, {cuts} segments; {runs} runs",
        file=sys.stderr,
    )
    for row in rows:
        print(
            f"{row[0]:>20} reads of {row[1]:>2} KiB: {row[2]:.3f} % of a core "
            f"(min {row[3]:.3f}, max {row[4]:.3f}), {row[5]:.2f} µs per KB",
            file=sys.stderr,
        )
    write_result(
        NAME,
        out=args.out,
        quick=args.quick,
        started=started,
        setup={
            "stream_seconds": round(stream_seconds, 1),
            "mux_rate_bits": MUX_RATE,
            "segments": cuts,
            "runs": runs,
        },
        tables=[
            (
                "CPU per second of a 4 Mbit/s stream (this process, % of one core)",
                ["work", "read KiB", "median %", "min %", "max %", "µs per KB"],
                rows,
            )
        ],
        targets=[Target("segmenting a 4 Mbit/s channel (worst read size)", figure, "<=", 1, "%")],
        data=results,
        plot=None,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
