"""fanout: one channel, 10 / 100 / 300 players reloading the playlist like hls.js.

Each player reloads the playlist by hls.js's rule (once per target duration; half a target
duration after a reload that brought no new segment: ``hlsjs_reload_interval`` in
``trioproxy.testing.players``) and fetches each new segment once. Reported per size: segment
and playlist latency (p50/p99/max), requests/s, playlist loads per player-minute, the proxy's
CPU (also as CPU-seconds per player-minute) and RSS, and how many times the engine was asked
for each segment (must be exactly 1).

    python -m benchmarks.fanout            # 2 runs × 10/100/300 players, ~2.5 min
    python -m benchmarks.fanout --quick    # 1 run, shorter windows, ~1 min
"""

from __future__ import annotations

import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

from trioproxy.testing.players import PlayerLog, random_content_id

from .loadgen import play, sample_lag
from .report import Target, base_parser, begin, fmt, pyplot, write_result
from .servers import Child, start_child
from .stats import percentile, spread

NAME = "fanout"
SIZES = (10, 100, 300)


async def measure(fixtures: Child, clients: int, seconds: float, warmup: float) -> dict[str, Any]:
    engine_urls = fixtures.ready["engines"]
    config = {
        "engines": engine_urls,
        "orchestrator_url": fixtures.ready["orchestrator"],
        "proxy_grace_period": 60.0,
        "max_players_per_channel": 1000,  # up to 300 players: no admission cap may refuse one
        "log_level": "WARNING",
    }
    content_id = random_content_id()
    log = PlayerLog()
    client_lag: list[float] = []
    async with start_child("proxy", {"config": config, "lag": True}) as proxy:
        base = proxy.ready["proxy"]
        start = trio.current_time()
        measure_from = start + warmup
        until = measure_from + seconds
        cpu_before = rss_before = 0.0
        async with trio.open_nursery() as nursery:
            # The first player opens the channel; the others join over one target duration.
            nursery.start_soon(play, base, content_id, until, log)
            for _ in range(clients - 1):
                await trio.sleep(random.uniform(0, 2.0 / clients * 2))
                nursery.start_soon(play, base, content_id, until, log)
            await trio.sleep_until(measure_from)
            cpu_before, rss_before = proxy.cpu_seconds(), float(proxy.rss_bytes())
            await proxy.command("lag")
            nursery.start_soon(sample_lag, client_lag, until)
            await trio.sleep_until(until)
            cpu = proxy.cpu_seconds() - cpu_before
            rss = proxy.rss_bytes()
            loop = await proxy.command("lag")
        engine = await fixtures.command("engine")
    sessions = [s for s in engine["sessions"] if s["key"] == content_id]
    fetches = sum(s["fetches"] for s in sessions)
    segments = sum(s["segments"] for s in sessions)
    seg, playlists, errors = log.window(measure_from, until)
    return {
        "clients": clients,
        "seconds": seconds,
        "segment_latencies": seg,
        "playlist_latencies": playlists,
        "requests": len(seg) + len(playlists),
        "requests_per_second": (len(seg) + len(playlists)) / seconds,
        "errors": errors,
        "cpu_cores": cpu / seconds,
        "cpu_seconds_per_player_minute": cpu / (clients * seconds / 60),
        "playlists_per_player_minute": len(playlists) / (clients * seconds / 60),
        "rss_bytes": rss,
        "rss_before_bytes": rss_before,
        "lag_ms": loop["lag_ms"],
        "gc": loop["gc"],
        "client_lag_ms": spread(client_lag, 1000),
        "engine_sessions": len(sessions),
        "upstream_fetches": fetches,
        "upstream_segments": segments,
        "fetches_per_segment": fetches / segments if segments else float("nan"),
    }


async def run(
    sizes: Sequence[int], runs: int, seconds: float, warmup: float
) -> list[dict[str, Any]]:
    results = []
    async with start_child("fixtures", {"engine_ports": 1, "backlog": 6.0}) as fixtures:
        for run_index in range(runs):
            for clients in sizes:
                print(f"{NAME}: run {run_index + 1}/{runs}, {clients} clients", file=sys.stderr)
                result = await measure(fixtures, clients, seconds, warmup)
                result["run"] = run_index
                results.append(result)
    return results


def summarize(results: list[dict[str, Any]], sizes: Sequence[int]) -> list[dict[str, Any]]:
    rows = []
    for clients in sizes:
        mine = [r for r in results if r["clients"] == clients]
        seg = [x for r in mine for x in r["segment_latencies"]]
        pl = [x for r in mine for x in r["playlist_latencies"]]
        fetches = sum(r["upstream_fetches"] for r in mine)
        segments = sum(r["upstream_segments"] for r in mine)
        per_minute = [r["cpu_seconds_per_player_minute"] for r in mine]
        rows.append(
            {
                "clients": clients,
                "runs": len(mine),
                "segment_ms": spread(seg, 1000),
                "playlist_ms": spread(pl, 1000),
                "requests_per_second": percentile([r["requests_per_second"] for r in mine], 50),
                "errors": sum(r["errors"] for r in mine),
                "cpu_cores": percentile([r["cpu_cores"] for r in mine], 50),
                "cpu_s_per_player_minute": percentile(per_minute, 50),
                "cpu_s_per_player_minute_min": min(per_minute),
                "cpu_s_per_player_minute_max": max(per_minute),
                "playlists_per_player_minute": percentile(
                    [r["playlists_per_player_minute"] for r in mine], 50
                ),
                "lag_p99_ms": max(r["lag_ms"]["p99"] for r in mine),
                "lag_max_ms": max(r["lag_ms"]["max"] for r in mine),
                "gc_max_ms": max(r["gc"]["max_ms"] for r in mine),
                "gc_full": sum(r["gc"]["full_collections"] for r in mine),
                "client_lag_p99_ms": max(r["client_lag_ms"]["p99"] for r in mine),
                "rss_mib": max(r["rss_bytes"] for r in mine) / 2**20,
                "engine_sessions": max(r["engine_sessions"] for r in mine),
                "fetches_per_segment": fetches / segments if segments else float("nan"),
                "worst_run_fetches_per_segment": max(r["fetches_per_segment"] for r in mine),
            }
        )
    return rows


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.2), dpi=90)
    clients = [r["clients"] for r in rows]
    for key, style in (("median", "o-"), ("p99", "s--"), ("max", "^:")):
        left.plot(clients, [r["segment_ms"][key] for r in rows], style, label=key)
    left.axhline(30, color="red", linewidth=0.8, label="p99 target")
    left.set_xscale("log")
    left.set_xlabel("players")
    left.set_ylabel("segment latency (ms)")
    left.legend(fontsize=7)
    right.plot(clients, [r["cpu_cores"] * 100 for r in rows], "o-", label="CPU %")
    right.set_xscale("log")
    right.set_xlabel("players")
    right.set_ylabel("proxy CPU (% of a core)")
    twin = right.twinx()
    twin.plot(clients, [r["requests_per_second"] for r in rows], "s--", color="gray")
    twin.set_ylabel("requests/s", color="gray")
    fig.suptitle("fanout: one channel, many players", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(NAME, __doc__ or "")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    runs = args.runs or (1 if args.quick else 2)
    seconds, warmup = (6.0, 3.0) if args.quick else (20.0, 4.0)
    started = begin()
    results = trio.run(run, sizes, runs, seconds, warmup)
    rows = summarize(results, sizes)
    largest = rows[-1]
    targets = [
        Target(
            f"upstream fetches per segment, {r['clients']} players",
            r["fetches_per_segment"],
            "==",
            1.0,
        )
        for r in rows
    ]
    targets.append(
        Target(
            f"segment p99 at {largest['clients']} players",
            largest["segment_ms"]["p99"],
            "<=",
            30.0,
            "ms",
        )
    )
    targets.append(
        Target(
            f"proxy CPU-s per HLS player-minute at {largest['clients']} players (median of runs)",
            largest["cpu_s_per_player_minute"],
            "<=",
            0.04,
            "s",
        )
    )
    table = [
        (
            r["clients"],
            r["runs"],
            r["segment_ms"]["n"],
            r["segment_ms"]["median"],
            r["segment_ms"]["p99"],
            r["segment_ms"]["max"],
            r["playlist_ms"]["median"],
            r["playlist_ms"]["p99"],
            r["requests_per_second"],
            r["playlists_per_player_minute"],
            r["cpu_cores"] * 100,
            r["cpu_s_per_player_minute"],
            f"{fmt(r['cpu_s_per_player_minute_min'])}–{fmt(r['cpu_s_per_player_minute_max'])}",
            r["rss_mib"],
            r["lag_p99_ms"],
            r["lag_max_ms"],
            r["gc_max_ms"],
            r["client_lag_p99_ms"],
            r["fetches_per_segment"],
            r["engine_sessions"],
            r["errors"],
        )
        for r in rows
    ]
    columns = [
        "players",
        "runs",
        "segments",
        "seg p50 ms",
        "seg p99 ms",
        "seg max ms",
        "playlist p50 ms",
        "playlist p99 ms",
        "req/s",
        "playlists per player-min",
        "proxy CPU %",
        "CPU-s per player-min",
        "min–max over runs",
        "proxy RSS MiB",
        "loop lag p99 ms",
        "loop lag max ms",
        "GC max ms",
        "client lag p99 ms",
        "fetches/segment",
        "engine sessions",
        "errors",
    ]
    md = write_result(
        NAME,
        out=args.out,
        quick=args.quick,
        started=started,
        setup={
            "measure_seconds": seconds,
            "warmup_seconds": warmup,
            "runs": runs,
            "segment": "2 s MPEG-TS, ~60 KB",
            "reload rule": "hls.js (target duration; half after a miss)",
            "load generator": "separate process (raw HTTP/1.1 on Trio, one connection per player)",
        },
        tables=[("Per size", columns, table)],
        targets=targets,
        data={"rows": rows},
        plot=lambda path: plot(rows, path),
        notes=[
            "CPU is the proxy process's user+system time over the measured window, "
            "in % of one core; the engine and orchestrator run in another process. "
            "CPU-s per player-minute: that time ÷ (players × minutes measured).",
            "Players reload by hls.js's rule: once per target duration (the last segment's "
            "duration if shorter) after a reload that brought a new segment, half a target "
            "duration after one that did not (hls.js 1.7 computeReloadInterval).",
            "Loop lag: how late trio.sleep(0.01) woke up in the proxy's event loop during the "
            "window (a sampler task in the proxy process); GC max: the longest garbage "
            "collector run there. Client lag: the same, in the load generator's process.",
        ],
    )
    print(md.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
