"""Per-request cost of a media playlist: rendered per request, or kept per window change.

``python -m benchmarks.playlists [--quick] [--runs N]`` (~10 s; in process, no sockets). A
channel of the in-memory harness (simulated engine, 2 s segments, the default window of 6) is
started with its window full; then, with nothing changing, the two ways of answering a
playlist request are timed back to back, alternating within each round: rendering it afresh
(what every request cost before: ``trioproxy.http.playlists.render`` and the encoding to bytes)
and :func:`trioproxy.http.playlists.media_playlist` (rendered once per window change, the same
``bytes`` after). Reported: µs per request, median of the rounds with min and max, and the
ratio, taken within each round.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import trio
import trio.lowlevel

from trioproxy.channels.channel import Channel
from trioproxy.http.playlists import media_playlist, render
from trioproxy.testing.engine import SimulatedEngine
from trioproxy.testing.harness import default_config, harness, small_media

from .report import base_parser, begin, write_result

NAME = "playlists"
ROOT = ""


def per_call_us(work: Callable[[], object], calls: int) -> float:
    began = time.perf_counter_ns()
    for _ in range(calls):
        work()
    return (time.perf_counter_ns() - began) / calls / 1000


async def measure(runs: int, calls: int) -> dict[str, Any]:
    config = default_config(hls_initial_segments=6)  # ready: a full window of 6
    engine = SimulatedEngine(small_media(), durations=[2.0], backlog=16.0)
    async with harness(config, engine) as h:
        await h.open_playlist()
        channel: Channel = h.channel()
        assert len(channel.window) >= config.hls_window_size, len(channel.window)
        body = media_playlist(channel, ROOT)
        assert body == render(channel, ROOT).encode()

        def fresh() -> bytes:
            return render(channel, ROOT).encode()

        def kept() -> bytes:
            return media_playlist(channel, ROOT)

        ways = {"rendered per request": fresh, "kept per window change": kept}
        rounds: list[dict[str, float]] = []
        version = channel.window.version
        for index in range(runs):
            order = list(ways) if index % 2 == 0 else list(reversed(ways))
            # Synchronous: no segment can arrive while a round runs.
            rounds.append({name: per_call_us(ways[name], calls) for name in order})
            await trio.lowlevel.checkpoint()
        changed = channel.window.version != version
    return {
        "rounds": rounds,
        "playlist_bytes": len(body),
        "segments_listed": body.count(b"#EXTINF"),
        "window_changed_between_rounds": changed,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(NAME, __doc__ or "")
    args = parser.parse_args(argv)
    runs = args.runs or (5 if args.quick else 15)
    calls = 2000 if args.quick else 5000
    started = begin()
    data = trio.run(measure, runs, calls)
    rounds = data["rounds"]
    rows = []
    for name in rounds[0]:
        values = [r[name] for r in rounds]
        rows.append([name, len(values), statistics.median(values), min(values), max(values)])
    ratios = [r["rendered per request"] / r["kept per window change"] for r in rounds]
    rows.append(
        [
            "ratio (rendered ÷ kept)",
            len(ratios),
            statistics.median(ratios),
            min(ratios),
            max(ratios),
        ]
    )
    for row in rows:
        print(f"{row[0]:>26}: {row[2]:.3f} (min {row[3]:.3f}, max {row[4]:.3f})", file=sys.stderr)
    md = write_result(
        NAME,
        out=args.out,
        quick=args.quick,
        started=started,
        setup={
            "calls_per_round": calls,
            "rounds": runs,
            "playlist_bytes": data["playlist_bytes"],
            "segments_listed": data["segments_listed"],
        },
        tables=[
            (
                "µs per playlist request (this process)",
                ["way", "rounds", "median", "min", "max"],
                rows,
            )
        ],
        targets=[],
        data=data,
        plot=None,
        notes=[
            "Only the playlist's rendering is timed: the HTTP request around it is not.",
            "The two ways alternate within each round; the ratio is taken within each round.",
        ],
    )
    print(md.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
