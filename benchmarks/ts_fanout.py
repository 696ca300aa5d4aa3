"""ts_fanout: one channel, 10 / 100 / 300 / 1,000 MPEG-TS players, beside the HLS fan-out.

Each TS player is one lean raw-socket connection to ``/ace/getstream?id=…&format=ts`` reading
as fast as the proxy sends (which is the stream's bitrate: the proxy sends each segment as it
arrives). Every size starts on a cold channel: up to 100 players arrive at the same instant,
more over 2 s. Reported per size: the proxy's CPU per player-minute and RSS, the delivered rate
per player against the stream's bitrate, players that stalled (no byte for two segment
durations after media began) or were cut, engine fetches per segment and sessions, time to
first byte and to first media byte, garbage-collector time. Every size is measured ``--runs``
times (3 in a full run); the headline is the CPU ms per extra player-minute, from the fewest
and the most players of each run (median over runs), against 2× a Go TS proxy's figure on the
same machine (a constant, :data:`GO_REFERENCE_MS`). The HLS rows are
:mod:`benchmarks.fanout`'s measure, run against the same fixtures in the same run.
"""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from trioproxy.hls.mpegts import NULL_PACKET
from trioproxy.testing.engine import demo_media
from trioproxy.testing.players import random_content_id

from . import fanout
from .loadgen import split_url
from .report import Target, base_parser, begin, pyplot, write_result
from .servers import Child, start_child
from .stats import percentile, spread

NAME = "ts_fanout"
SIZES = (10, 100, 300, 1000)
MARGINAL_TARGET_MS = 6.0
"""CPU ms per extra player-minute the proxy should stay under: 2× the Go TS proxy below."""
GO_REFERENCE_MS = 3.0
"""CPU ms per extra player-minute of a Go TS proxy (32 KiB write buffer, this benchmark's media),
measured once on the machine these results come from: a constant reported here, not measured
by this benchmark."""

HLS_SIZES = (10, 100, 300)
SEGMENT_SECONDS = 2.0
INSTANT = 100
"""Up to this many players arrive at the same instant; more arrive over 2 s."""


def bitrate() -> float:
    """Bytes per second of the demo stream."""
    media = demo_media()
    return sum(len(s) for s in media) / (len(media) * SEGMENT_SECONDS)


@dataclass
class TsReader:
    """One TS player: what it received and when (``trio.current_time()``)."""

    began: float = 0.0
    first_byte: float | None = None
    first_media: float | None = None
    received: int = 0
    window_bytes: int = 0
    longest_silence: float = 0.0
    cut: bool = False
    refused: int | None = None


async def ts_play(
    url: str,
    reader: TsReader,
    until: float,
    measure_from: float,
    on_payload: Callable[[bytes], None] | None = None,
) -> None:
    """Read the TS stream at ``url`` until ``until``; decodes chunked framing, counts bytes
    (and hands each piece of the body to ``on_payload``, when given, as it arrives)."""
    host, port, path = split_url(url)
    reader.began = trio.current_time()
    try:
        stream = await trio.open_tcp_stream(host, port)
    except OSError:
        reader.cut = True
        return
    async with stream:
        await stream.send_all(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        buffer = b""
        with trio.move_on_at(until):
            while b"\r\n\r\n" not in buffer:
                data = await stream.receive_some(65536)
                if not data:
                    reader.cut = True
                    return
                buffer += data
            head, buffer = buffer.split(b"\r\n\r\n", 1)
            status = int(head.split(b" ", 2)[1])
            if status != 200:
                reader.refused = status
                return
            last = trio.current_time()
            remaining = 0  # bytes left in the current chunk
            while True:
                # Chunked framing: take whole chunk payloads out of the buffer.
                while buffer:
                    if remaining == 0:
                        line_end = buffer.find(b"\r\n")
                        if line_end < 0:
                            break
                        size = int(buffer[:line_end] or b"0", 16) if line_end else 0
                        buffer = buffer[line_end + 2 :]
                        if line_end == 0:
                            continue  # the CRLF after a chunk's payload
                        if size == 0:
                            reader.cut = True  # the response ended: the channel did
                            return
                        remaining = size
                    payload, buffer = buffer[:remaining], buffer[remaining:]
                    remaining -= len(payload)
                    now = trio.current_time()
                    if reader.first_byte is None:
                        reader.first_byte = now - reader.began
                    if reader.first_media is None and payload.replace(NULL_PACKET, b""):
                        reader.first_media = now - reader.began
                    reader.received += len(payload)
                    if now >= measure_from:
                        reader.window_bytes += len(payload)
                    if reader.first_media is not None and now >= measure_from:
                        reader.longest_silence = max(reader.longest_silence, now - last)
                    last = now
                    if on_payload is not None:
                        on_payload(payload)
                data = await stream.receive_some(65536)
                if not data:
                    reader.cut = True
                    return
                buffer += data


async def measure(fixtures: Child, players: int, seconds: float, warmup: float) -> dict[str, Any]:
    config = {
        "engines": fixtures.ready["engines"],
        "orchestrator_url": fixtures.ready["orchestrator"],
        "proxy_grace_period": 60.0,
        "max_players_per_channel": 2000,
        "max_connections_per_address": 0,
        "log_level": "WARNING",
    }
    content_id = random_content_id()
    readers = [TsReader() for _ in range(players)]
    async with start_child("proxy", {"config": config, "lag": True}) as proxy:
        url = f"{proxy.ready['proxy']}/ace/getstream?id={content_id}&format=ts"
        start = trio.current_time()
        measure_from = start + warmup
        until = measure_from + seconds
        async with trio.open_nursery() as nursery:
            spread_over = 0.0 if players <= INSTANT else 2.0
            for reader in readers:
                if spread_over:
                    await trio.sleep(random.uniform(0, 2 * spread_over / players))
                nursery.start_soon(ts_play, url, reader, until, measure_from)
            await trio.sleep_until(measure_from)
            cpu_before = proxy.cpu_seconds()
            await proxy.command("lag")
            await trio.sleep_until(until)
            cpu = proxy.cpu_seconds() - cpu_before
            rss = proxy.rss_bytes()
            loop = await proxy.command("lag")
        engine = await fixtures.command("engine")
    sessions = [s for s in engine["sessions"] if s["key"] == content_id]
    fetches = sum(s["fetches"] for s in sessions)
    segments = sum(s["segments"] for s in sessions)
    rate = bitrate()
    delivered = [r.window_bytes / seconds / rate for r in readers]
    stall_limit = 2 * SEGMENT_SECONDS
    return {
        "players": players,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "cpu_per_player_minute_ms": 1000 * cpu / (players * seconds / 60),
        "cpu_cores": cpu / seconds,
        "rss_bytes": rss,
        "lag_ms": loop["lag_ms"],
        "gc": loop["gc"],
        "delivered": spread(delivered, 1),
        "stalled": sum(r.longest_silence > stall_limit for r in readers),
        "cut": sum(r.cut for r in readers),
        "refused": sum(r.refused is not None for r in readers),
        "ttfb_ms": spread([r.first_byte for r in readers if r.first_byte is not None], 1000),
        "first_media_ms": spread(
            [r.first_media for r in readers if r.first_media is not None], 1000
        ),
        "engine_sessions": len(sessions),
        "fetches_per_segment": fetches / segments if segments else float("nan"),
    }


async def run(
    sizes: Sequence[int], hls_sizes: Sequence[int], runs: int, seconds: float, warmup: float
) -> tuple[list[list[dict[str, Any]]], list[dict[str, Any]]]:
    """TS rows per run (every size in each run, in turn), then the HLS rows."""
    ts: list[list[dict[str, Any]]] = []
    hls = []
    async with start_child("fixtures", {"engine_ports": 1, "backlog": 6.0}) as fixtures:
        for number in range(runs):
            rows = []
            for players in sizes:
                print(f"{NAME}: run {number + 1}/{runs}, {players} TS players", file=sys.stderr)
                rows.append(await measure(fixtures, players, seconds, warmup))
            ts.append(rows)
        for clients in hls_sizes:
            print(f"{NAME}: {clients} HLS players", file=sys.stderr)
            hls.append(await fanout.measure(fixtures, clients, seconds, warmup))
    return ts, hls


TS_COLUMNS: list[tuple[str, Callable[[dict[str, Any]], float]]] = [
    ("TS players", lambda r: r["players"]),
    ("CPU ms / player-min", lambda r: r["cpu_per_player_minute_ms"]),
    ("proxy CPU %", lambda r: r["cpu_cores"] * 100),
    ("proxy RSS MiB", lambda r: r["rss_bytes"] / 2**20),
    ("rate min ×", lambda r: r["delivered"]["min"]),
    ("rate p50 ×", lambda r: r["delivered"]["median"]),
    ("stalled", lambda r: r["stalled"]),
    ("cut", lambda r: r["cut"]),
    ("refused", lambda r: r["refused"]),
    ("fetches/segment", lambda r: r["fetches_per_segment"]),
    ("engine sessions", lambda r: r["engine_sessions"]),
    ("TTFB p50 ms", lambda r: r["ttfb_ms"]["median"]),
    ("TTFB max ms", lambda r: r["ttfb_ms"]["max"]),
    ("first media p50 ms", lambda r: r["first_media_ms"]["median"]),
    ("first media max ms", lambda r: r["first_media_ms"]["max"]),
    ("loop lag p99 ms", lambda r: r["lag_ms"]["p99"]),
    ("GC ms/s", lambda r: r["gc"]["total_ms"] / r["seconds"]),
    ("GC max ms", lambda r: r["gc"]["max_ms"]),
]

HLS_COLUMNS: list[tuple[str, Callable[[dict[str, Any]], float]]] = [
    ("HLS players", lambda r: r["clients"]),
    ("CPU ms / player-min", lambda r: 1000 * r["cpu_cores"] * 60 / r["clients"]),
    ("proxy CPU %", lambda r: r["cpu_cores"] * 100),
    ("proxy RSS MiB", lambda r: r["rss_bytes"] / 2**20),
    ("segment p99 ms", lambda r: spread(r["segment_latencies"], 1000)["p99"]),
    ("fetches/segment", lambda r: r["fetches_per_segment"]),
    ("engine sessions", lambda r: r["engine_sessions"]),
    ("errors", lambda r: r["errors"]),
]


def marginal_ms(rows: Sequence[dict[str, Any]]) -> float:
    """CPU ms per extra player-minute: what the largest size costs over the smallest, per extra
    player and minute of the window (the channel's own work, the same at both, drops out)."""
    low = min(rows, key=lambda r: r["players"])
    high = max(rows, key=lambda r: r["players"])
    if high["players"] == low["players"]:
        return math.nan
    extra_minutes = (high["players"] - low["players"]) * high["seconds"] / 60
    return float(1000 * (high["cpu_seconds"] - low["cpu_seconds"]) / extra_minutes)


def median_run(runs: Sequence[Sequence[dict[str, Any]]], index: int) -> dict[str, Any]:
    """The row of size ``index`` from the run whose CPU there is the median."""
    rows = sorted((rows[index] for rows in runs), key=lambda r: r["cpu_seconds"])
    return rows[(len(rows) - 1) // 2]


def plot(rows: list[dict[str, Any]], hls: list[dict[str, Any]], path: Path) -> None:
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.2), dpi=90)
    left.plot([r["players"] for r in rows], [r["cpu_cores"] * 100 for r in rows], "o-", label="TS")
    left.plot([r["clients"] for r in hls], [r["cpu_cores"] * 100 for r in hls], "s--", label="HLS")
    left.set_xscale("log")
    left.set_xlabel("players")
    left.set_ylabel("proxy CPU (% of a core)")
    left.legend(fontsize=7)
    right.plot([r["players"] for r in rows], [r["rss_bytes"] / 2**20 for r in rows], "o-")
    right.set_xscale("log")
    right.set_xlabel("players")
    right.set_ylabel("proxy RSS (MiB)")
    fig.suptitle("ts_fanout: one channel, many MPEG-TS players", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(NAME, __doc__ or "")
    parser.add_argument("--sizes", default=None, help="TS player counts, comma-separated")
    args = parser.parse_args(argv)
    if args.sizes:
        sizes = [int(s) for s in args.sizes.split(",")]
    else:
        sizes = [10, 100] if args.quick else list(SIZES)
    hls_sizes = [10] if args.quick else list(HLS_SIZES)
    seconds, warmup = (6.0, 4.0) if args.quick else (30.0, 6.0)
    runs = args.runs or (1 if args.quick else 3)
    started = begin()
    ts_runs, hls = trio.run(run, sizes, hls_sizes, runs, seconds, warmup)
    ts = [median_run(ts_runs, index) for index in range(len(sizes))]
    every = [row for rows in ts_runs for row in rows]
    biggest = max(sizes)
    largest = [row for row in every if row["players"] == biggest]
    marginals = [marginal_ms(rows) for rows in ts_runs]
    marginal = percentile(marginals, 50)
    low = min(sizes)
    name = f"CPU ms per extra player-minute ({low} → {biggest} TS, median of {runs})"
    targets = [Target(name, marginal, "<=", MARGINAL_TARGET_MS, "ms")]
    worst_ttfb = max(r["ttfb_ms"]["max"] for r in largest)
    targets.append(Target(f"TTFB max, {biggest} TS (all runs)", worst_ttfb, "<=", 1000, "ms"))
    for r in ts:
        players, fetches = r["players"], r["fetches_per_segment"]
        targets.append(Target(f"engine fetches per segment, {players} TS", fetches, "==", 1))
    for r in ts:
        players, sessions = r["players"], r["engine_sessions"]
        targets.append(Target(f"engine sessions, {players} TS players", sessions, "==", 1))
    broken = sum(r["stalled"] + r["cut"] for r in largest)
    cores = max(r["cpu_cores"] for r in largest)
    rate = min(r["delivered"]["min"] for r in largest)
    targets += [
        Target(f"stalled or cut, {biggest} TS (all runs)", broken, "==", 0),
        Target(f"proxy CPU, {biggest} TS (worst run)", cores, "<=", 1.0, "cores"),
        Target(f"delivered rate, worst {biggest} TS player", rate, ">=", 0.9, "× bitrate"),
    ]
    table = [
        (number + 1, *(value(r) for _, value in TS_COLUMNS))
        for number, rows in enumerate(ts_runs)
        for r in rows
    ]
    columns = ["run", *(name for name, _ in TS_COLUMNS)]
    marginal_table: list[tuple[Any, ...]] = [
        (number + 1, value, low, biggest) for number, value in enumerate(marginals)
    ]
    marginal_table.append(("median", marginal, low, biggest))
    marginal_columns = ["run", "CPU ms per extra player-minute", "from players", "to players"]
    hls_table = [tuple(value(r) for _, value in HLS_COLUMNS) for r in hls]
    hls_columns = [name for name, _ in HLS_COLUMNS]
    finite = [m for m in marginals if not math.isnan(m)]
    md = write_result(
        NAME,
        out=args.out,
        quick=args.quick,
        started=started,
        setup={
            "measure_seconds": seconds,
            "warmup_seconds": warmup,
            "runs": runs,
            "segment": f"{SEGMENT_SECONDS:g} s MPEG-TS, {bitrate() * 8 / 1000:.0f} kbit/s",
            "arrivals": f"cold channel; ≤ {INSTANT} players at one instant, more over 2 s",
            "load generator": "this process: raw HTTP/1.1 on Trio, one connection per player",
            "Go TS proxy reference (a constant of this machine, not measured here)": (
                f"{GO_REFERENCE_MS:g} ms per extra player-minute, 32 KiB write buffer"
            ),
        },
        tables=[
            ("CPU ms per extra player-minute", marginal_columns, marginal_table),
            ("MPEG-TS players, every run", columns, table),
            ("HLS players, same run", hls_columns, hls_table),
        ],
        targets=targets,
        data={
            "ts": ts,
            "ts_runs": ts_runs,
            "hls": hls,
            "cpu_ms_per_extra_player_minute": {
                "runs": marginals,
                "median": marginal,
                "min": min(finite, default=math.nan),
                "max": max(finite, default=math.nan),
                "target": MARGINAL_TARGET_MS,
                "go_reference": GO_REFERENCE_MS,
            },
        },
        plot=lambda path: plot(ts, hls, path),
        notes=[
            "CPU ms per extra player-minute: (CPU at the most players − CPU at the fewest) over "
            "the extra players × minutes of the window, one figure per run; the target is 2× "
            f"the {GO_REFERENCE_MS:g} ms a Go TS proxy (32 KiB write buffer) took on this "
            "machine with the same media, a reported constant.",
            "CPU is the proxy process's user+system time over the measured window; per "
            "player-minute it is that divided by players × minutes (the channel's own work "
            "included, so it falls with more players).",
            "Rate: bytes a player received in the window over the stream's bitrate (1.0: real "
            "time; segments arrive whole, so a window edge can move one segment either way).",
            "Stalled: no byte for two segment durations once media flowed; cut: the proxy ended "
            "the connection; first media: the first byte that is not a null packet. TTFB and "
            "first media include the load generator's own delays (it shares the machine).",
            "GC: the proxy's garbage-collector time over the window, per second, and its "
            "longest pause. The plot shows, per size, the run with the median CPU.",
        ],
    )
    print(md.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
