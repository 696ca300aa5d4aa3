"""channels: what a channel costs, at 10 / 100 / 300 concurrent channels on the fake engine.

One proxy process grows from 0 to 10, 100 and 300 channels (no players: the grace period is long).
At each size, after the channels are ready and have settled, one window measures:
- RSS per channel beyond the segment bytes the channels hold: (RSS − RSS at 0 − bytes held) / N;
- CPU per channel: (CPU at N − CPU at 0) / N, in % of one core;
- scheduler latency: how late ``trio.sleep(0.01)`` wakes up in the proxy's event loop
  (a task in the proxy process samples it 100 times a second).
Engines are laid out as in production: ``ACEXY_MAX_STREAMS_PER_ENGINE`` = 3, so 300 channels use
100 engines (one simulated engine served on 101 ports, in another process with the orchestrator).
New channels are started spread over one target duration, as players arriving would.
"""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

from trioproxy.testing.players import random_content_id

from .loadgen import Connection, split_url
from .report import base_parser, begin, pyplot, write_result
from .servers import Child, start_child

NAME = "channels"
SIZES = (10, 100, 300)
STREAMS_PER_ENGINE = 3
READY_TIMEOUT = 60.0


async def status(base: str) -> dict[str, Any]:
    host, port, _ = split_url(base)
    connection = Connection(host, port)
    try:
        response = await connection.request("GET", "/proxy/status")
        result: dict[str, Any] = json.loads(response.body)
        return result
    finally:
        await connection.aclose()


async def add_channels(base: str, count: int, spread: float = 2.0) -> None:
    """Start ``count`` channels at even intervals over ``spread`` seconds."""
    host, port, _ = split_url(base)
    began = trio.current_time()

    async def one(index: int) -> None:
        await trio.sleep_until(began + spread * index / count)
        connection = Connection(host, port)
        try:
            response = await connection.request("GET", f"/ace/getstream?id={random_content_id()}")
            if response.status != 302:
                raise RuntimeError(f"getstream answered {response.status}")
        finally:
            await connection.aclose()

    async with trio.open_nursery() as nursery:
        for index in range(count):
            nursery.start_soon(one, index)


async def window(proxy: Child, seconds: float) -> dict[str, Any]:
    await proxy.command("lag")  # drop what was sampled before the window
    cpu_before = proxy.cpu_seconds()
    await trio.sleep(seconds)
    cpu = proxy.cpu_seconds() - cpu_before
    loop = await proxy.command("lag")
    lag = loop["lag_ms"]
    rss = proxy.rss_bytes()
    snapshot = await status(proxy.ready["proxy"])
    channels = snapshot["channels"]
    return {
        "channels": len(channels),
        "ready": sum(1 for c in channels if c["state"] == "ready"),
        "cpu_cores": cpu / seconds,
        "lag_ms": lag,
        "gc": loop["gc"],
        "rss_bytes": rss,
        "segment_bytes": sum(c["buffer"]["bytes"] for c in channels),
        "segments": sum(c["buffer"]["segments"] for c in channels),
        "gaps": sum(c["buffer"]["gaps"] for c in channels),
    }


async def run(sizes: Sequence[int], seconds: float, settle: float) -> list[dict[str, Any]]:
    engines = -(-max(sizes) // STREAMS_PER_ENGINE) + 1
    rows = []
    async with start_child("fixtures", {"engine_ports": engines, "backlog": 6.0}) as fixtures:
        config = {
            "engines": fixtures.ready["engines"],
            "orchestrator_url": fixtures.ready["orchestrator"],
            "max_streams_per_engine": STREAMS_PER_ENGINE,
            # The scenario is every channel starting at once: no admission cap may refuse one.
            "max_channels": 1000,
            "max_opening_per_engine": STREAMS_PER_ENGINE,
            "proxy_grace_period": 3600.0,
            "log_level": "WARNING",
        }
        async with start_child("proxy", {"config": config, "lag": True}) as proxy:
            base = proxy.ready["proxy"]
            print(f"{NAME}: 0 channels", file=sys.stderr)
            await trio.sleep(settle)
            rows.append({"size": 0, **await window(proxy, seconds)})
            current = 0
            for size in sizes:
                print(f"{NAME}: {size} channels", file=sys.stderr)
                began = trio.current_time()
                await add_channels(base, size - current)
                current = size
                with trio.move_on_after(READY_TIMEOUT):
                    while True:
                        snapshot = await status(base)
                        ready = sum(1 for c in snapshot["channels"] if c["state"] == "ready")
                        if ready >= size:
                            break
                        await trio.sleep(0.5)
                ramp = trio.current_time() - began
                await trio.sleep(settle)
                rows.append({"size": size, "ramp_seconds": ramp, **await window(proxy, seconds)})
    base_row = rows[0]
    for before, row in itertools.pairwise(rows):
        added = row["size"] - before["size"]
        row["marginal_rss_per_channel_bytes"] = (
            row["rss_bytes"]
            - before["rss_bytes"]
            - (row["segment_bytes"] - before["segment_bytes"])
        ) / added
    for row in rows[1:]:
        n = row["size"]
        row["rss_per_channel_bytes"] = (
            row["rss_bytes"] - base_row["rss_bytes"] - row["segment_bytes"]
        ) / n
        row["cpu_per_channel_percent"] = (row["cpu_cores"] - base_row["cpu_cores"]) / n * 100
    return rows


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.0), dpi=90)
    data = rows[1:]
    sizes = [r["size"] for r in data]
    axes[0].plot(sizes, [r["rss_per_channel_bytes"] / 1024 for r in data], "o-")
    axes[0].set_ylabel("KiB per channel (beyond segments)")
    axes[1].plot(sizes, [r["cpu_per_channel_percent"] for r in data], "o-")
    axes[1].set_ylabel("CPU per channel (% of a core)")
    every = rows
    sizes_all = [r["size"] for r in every]
    for key, style in (("median", "o-"), ("p99", "s--"), ("max", "^:")):
        axes[2].plot(sizes_all, [r["lag_ms"][key] for r in every], style, label=key)
    axes[2].set_ylabel("sleep(0.01) lateness (ms)")
    axes[2].legend(fontsize=7)
    for axis in axes:
        axis.set_xlabel("channels")
    fig.suptitle("channels: cost per channel and event-loop latency", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(NAME, __doc__ or "")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    seconds, settle = (3.0, 1.0) if args.quick else (12.0, 5.0)
    started = begin()
    rows = trio.run(run, sizes, seconds, settle)
    columns = [
        "channels",
        "ready",
        "ramp s",
        "proxy CPU %",
        "CPU/channel %",
        "RSS MiB",
        "segment MiB held",
        "RSS/channel KiB (beyond segments)",
        "marginal KiB/channel",
        "lag p50 ms",
        "lag p99 ms",
        "lag max ms",
        "lag samples",
        "GC runs",
        "GC max ms",
    ]
    table = [
        (
            r["size"],
            r["ready"],
            r.get("ramp_seconds", float("nan")),
            r["cpu_cores"] * 100,
            r.get("cpu_per_channel_percent", float("nan")),
            r["rss_bytes"] / 2**20,
            r["segment_bytes"] / 2**20,
            r.get("rss_per_channel_bytes", float("nan")) / 1024,
            r.get("marginal_rss_per_channel_bytes", float("nan")) / 1024,
            r["lag_ms"]["median"],
            r["lag_ms"]["p99"],
            r["lag_ms"]["max"],
            r["lag_ms"]["n"],
            r["gc"]["count"],
            r["gc"]["max_ms"],
        )
        for r in rows
    ]
    md = write_result(
        NAME,
        out=args.out,
        quick=args.quick,
        started=started,
        setup={
            "measure_seconds": seconds,
            "runs": 1,
            "settle_seconds": settle,
            "streams_per_engine": STREAMS_PER_ENGINE,
            "engines": -(-max(sizes) // STREAMS_PER_ENGINE) + 1,
            "segment": "2 s MPEG-TS, ~60 KB; each channel polls its playlist every 2 s",
        },
        tables=[("Per size", columns, table)],
        targets=[],
        data={"rows": rows},
        plot=lambda path: plot(rows, path),
        notes=[
            "No target is set for this benchmark; the figures are for capacity planning.",
            "Marginal KiB/channel: the same, for the channels added since the previous size "
            "(the first channels also pay one-time costs: connection pools, the SSL context).",
            "Channels have no players; each still reloads its engine playlist and downloads "
            "each new segment, as a watched channel does.",
        ],
    )
    print(md.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
