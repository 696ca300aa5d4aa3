"""ts_fanout: one channel, 10 / 100 / 300 / 1,000 MPEG-TS players, beside the HLS fan-out.

Each TS player is one lean raw-socket connection to ``/ace/getstream?id=…&format=ts`` reading
as fast as the proxy sends (which is the stream's bitrate: the proxy sends each segment as it
arrives). Every size starts on a cold channel: up to 100 players arrive at the same instant,
more over 2 s. Reported per size: the proxy's CPU per player-minute and RSS, the delivered rate
per player against the stream's bitrate, players that stalled (no byte for two segment
durations after media began) or were cut, engine fetches per segment and sessions, time to
first byte and to first media byte. The HLS rows are :mod:`benchmarks.fanout`'s measure, run
against the same fixtures in the same run.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Sequence
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
from .stats import spread

NAME = "ts_fanout"
SIZES = (10, 100, 300, 1000)
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


async def ts_play(url: str, reader: TsReader, until: float, measure_from: float) -> None:
    """Read the TS stream at ``url`` until ``until``; decodes chunked framing, counts bytes."""
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
    sizes: Sequence[int], hls_sizes: Sequence[int], seconds: float, warmup: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    ts, hls = [], []
    async with start_child("fixtures", {"engine_ports": 1, "backlog": 6.0}) as fixtures:
        for players in sizes:
            print(f"{NAME}: {players} TS players", file=sys.stderr)
            ts.append(await measure(fixtures, players, seconds, warmup))
        for clients in hls_sizes:
            print(f"{NAME}: {clients} HLS players", file=sys.stderr)
            hls.append(await fanout.measure(fixtures, clients, seconds, warmup))
    return ts, hls


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
    started = begin()
    ts, hls = trio.run(run, sizes, hls_sizes, seconds, warmup)
    largest = ts[-1]
    targets = [
        Target(f"engine fetches per segment, {r['players']} TS", r["fetches_per_segment"], "==", 1)
        for r in ts
    ]
    targets += [
        Target(f"engine sessions, {r['players']} TS players", r["engine_sessions"], "==", 1)
        for r in ts
    ]
    targets += [
        Target(
            f"stalled or cut, {largest['players']} TS", largest["stalled"] + largest["cut"], "==", 0
        ),
        Target(f"proxy CPU, {largest['players']} TS", largest["cpu_cores"], "<=", 1.0, "cores"),
        Target(
            f"delivered rate (worst player), {largest['players']} TS",
            largest["delivered"]["min"],
            ">=",
            0.9,
            "× bitrate",
        ),
    ]
    table = [
        (
            r["players"],
            r["cpu_per_player_minute_ms"],
            r["cpu_cores"] * 100,
            r["rss_bytes"] / 2**20,
            r["delivered"]["min"],
            r["delivered"]["median"],
            r["stalled"],
            r["cut"],
            r["refused"],
            r["fetches_per_segment"],
            r["engine_sessions"],
            r["ttfb_ms"]["median"],
            r["ttfb_ms"]["max"],
            r["first_media_ms"]["median"],
            r["first_media_ms"]["max"],
            r["lag_ms"]["p99"],
        )
        for r in ts
    ]
    columns = [
        "TS players",
        "CPU ms / player-min",
        "proxy CPU %",
        "proxy RSS MiB",
        "rate min ×",
        "rate p50 ×",
        "stalled",
        "cut",
        "refused",
        "fetches/segment",
        "engine sessions",
        "TTFB p50 ms",
        "TTFB max ms",
        "first media p50 ms",
        "first media max ms",
        "loop lag p99 ms",
    ]
    hls_table = [
        (
            r["clients"],
            1000 * r["cpu_cores"] * 60 / r["clients"],
            r["cpu_cores"] * 100,
            r["rss_bytes"] / 2**20,
            spread(r["segment_latencies"], 1000)["p99"],
            r["fetches_per_segment"],
            r["engine_sessions"],
            r["errors"],
        )
        for r in hls
    ]
    hls_columns = [
        "HLS players",
        "CPU ms / player-min",
        "proxy CPU %",
        "proxy RSS MiB",
        "segment p99 ms",
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
            "segment": f"{SEGMENT_SECONDS:g} s MPEG-TS, {bitrate() * 8 / 1000:.0f} kbit/s",
            "arrivals": f"cold channel; ≤ {INSTANT} players at one instant, more over 2 s",
            "load generator": "this process: raw HTTP/1.1 on Trio, one connection per player",
        },
        tables=[
            ("MPEG-TS players", columns, table),
            ("HLS players, same run", hls_columns, hls_table),
        ],
        targets=targets,
        data={"ts": ts, "hls": hls},
        plot=lambda path: plot(ts, hls, path),
        notes=[
            "CPU is the proxy process's user+system time over the measured window; per "
            "player-minute it is that divided by players × minutes.",
            "Rate: bytes a player received in the window over the stream's bitrate (1.0: real "
            "time; segments arrive whole, so a window edge can move one segment either way).",
            "Stalled: no byte for two segment durations once media flowed; cut: the proxy ended "
            "the connection; first media: the first byte that is not a null packet.",
        ],
    )
    print(md.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
