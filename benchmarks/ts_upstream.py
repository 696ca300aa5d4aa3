"""ts_upstream: the two ways of reading an engine, side by side on the same media.

``TRIOPROXY_UPSTREAM_MODE=ts`` reads the engine's continuous MPEG-TS over one connection and cuts
segments with the proxy's own segmenter; ``hls`` polls the engine's playlist and downloads its
segments. One simulated engine (``formats="both"``: it serves both, from the same media: ~250
kbit/s H.264 + AAC made by ffmpeg at run time, 1 s segments) is read by a fresh proxy in each
mode, interleaved: ts, hls, ts, hls (two rounds in a full run). Per mode and round:

1. **CPU per extra TS player-minute**: the proxy's CPU over the window with 10 TS players and
   with the most (1,000 in a full run), (CPU at the most − CPU at 10) over the extra players ×
   minutes; the players are :mod:`benchmarks.ts_fanout`'s raw-socket readers;
2. **engine-byte → TS-player-byte latency** at the most players: every
   :data:`PROBE_EVERY`-th player scans what it receives for PES headers; the simulated engine
   records when it sent each PES header (:mod:`benchmarks.stamps`); a header is named by its
   ``(PID, PTS)``, which the proxy passes through unchanged; both sides read
   ``CLOCK_MONOTONIC``;
3. **requests to the engine per channel-minute**, by kind, counted by the engine over the window;
4. **keyframe at the engine → segment listed** in the proxy's playlist: a poller reloads the
   proxy's playlist every :data:`POLL` s, fetches each new segment and names it by its first PES
   (the keyframe); the start is when the engine had that keyframe (ts: sent it on the stream;
   hls: the segment's time on its playlist);
5. **time to first media** for a TS player (first byte that is not a null packet) and to the
   first segment for an HLS player (``getstream``, playlist, newest segment), joining the warm
   channel one at a time;
6. **segmenting a 4 Mbit/s channel**: :mod:`benchmarks.segmenter`'s measure, in this run (the
   segmenter fed an ffmpeg 4 Mbit/s stream in reads of the reader's size, this process's CPU).

Targets (reported, not asserted) apply to the ``ts`` mode: ≤ 2.2 ms per extra TS player-minute,
latency p99 ≤ 300 ms at the most players, segmenting ≤ 1 % of a core per 4 Mbit/s channel.
"""

from __future__ import annotations

import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import trio

from trioproxy.hls.segmenter import Segmenter
from trioproxy.testing.engine import demo_media
from trioproxy.testing.players import parse_playlist, random_content_id
from trioproxy.upstream.streams import READ_BYTES

from . import segmenter as segmenter_bench
from .loadgen import Connection, split_url
from .report import Target, base_parser, begin, write_result
from .servers import Child, load_media, start_child
from .stamps import PtsScanner, key_text, match, pes_starts
from .stats import percentile, spread
from .ts_fanout import TsReader, marginal_ms, ts_play

NAME = "ts_upstream"
MODES = ("ts", "hls")
SEGMENT_SECONDS = 1.0
LOOP_SECONDS = 12
CPU_TARGET_MS = 2.2
LATENCY_TARGET_MS = 300.0
SEGMENTING_TARGET_PERCENT = 1.0
PROBE_EVERY = 20
"""Every this-many-th TS player (from the first) scans what it gets for PES headers."""
POLL = 0.02
"""Seconds between the keyframe poller's playlist reloads."""
INSTANT = 100
"""Up to this many players arrive at the same instant; more over 2 s."""
FFMPEG = (
    "ffmpeg -v error -y -f lavfi -i testsrc2=size=320x180:rate=25"
    " -f lavfi -i sine=frequency=440:sample_rate=48000"
    " -c:v libx264 -preset ultrafast -g 25 -keyint_min 25 -sc_threshold 0"
    " -b:v 160k -maxrate 160k -bufsize 160k -c:a aac -b:a 32k -f mpegts"
)
"""~250 kbit/s in all: a keyframe every second (25 fps)."""


# ---- media ---------------------------------------------------------------------------------------


def split_segments(data: bytes, target: float) -> list[bytes]:
    """``data`` (a transport stream) cut at its keyframes into segments of ``target`` seconds,
    each opening with the PAT and PMT (the proxy's own segmenter does the cutting)."""
    cutter = Segmenter(target)
    cuts = cutter.feed(data).cuts
    last = cutter.end()
    return [cut.data for cut in [*cuts, *([last] if last else [])]]


def make_media(folder: Path) -> bool:
    """Write ``seg0.ts`` … of :data:`LOOP_SECONDS` × 1 s into ``folder``; False without ffmpeg."""
    if shutil.which("ffmpeg") is None:
        return False
    path = folder / "stream.ts"
    command = [*FFMPEG.split()[:-2], "-t", str(LOOP_SECONDS), *FFMPEG.split()[-2:], str(path)]
    subprocess.run(command, check=True, timeout=120)
    for index, segment in enumerate(split_segments(path.read_bytes(), SEGMENT_SECONDS)):
        (folder / f"seg{index}.ts").write_bytes(segment)
    return True


def bitrate_bits(media: Sequence[bytes], segment_seconds: float) -> float:
    return 8 * sum(len(s) for s in media) / (len(media) * segment_seconds)


# ---- one proxy, one mode, one size ---------------------------------------------------------------


@dataclass
class Probe:
    """A TS player that notes when each PES header first reached it (``time.monotonic()``)."""

    scanner: PtsScanner = field(default_factory=PtsScanner)
    arrivals: dict[str, float] = field(default_factory=dict)

    def __call__(self, payload: bytes) -> None:
        found = self.scanner.feed(payload)
        if found:
            now = time.monotonic()
            for key in found:
                self.arrivals.setdefault(key_text(key), now)


@dataclass
class Stage:
    mode: str
    players: int
    seconds: float
    warmup: float
    poll_seconds: float = 0.0
    joins: int = 0


def proxy_spec(fixtures: Child, mode: str) -> dict[str, Any]:
    return {
        "config": {
            "engines": fixtures.ready["engines"],
            "orchestrator_url": fixtures.ready["orchestrator"],
            "upstream_mode": mode,
            "segment_target": SEGMENT_SECONDS,
            "proxy_grace_period": 60.0,
            "max_players_per_channel": 2000,
            "max_connections_per_address": 0,
            "log_level": "WARNING",
        },
        "lag": True,
    }


async def measure(fixtures: Child, stage: Stage, rate: float) -> dict[str, Any]:
    """One proxy in ``stage.mode``: players for the window, then (``poll_seconds``, ``joins``)
    the keyframe poller and the joins on the warm channel."""
    content_id = random_content_id()
    readers = [TsReader() for _ in range(stage.players)]
    probes = [Probe() for _ in range(0, stage.players, PROBE_EVERY)]
    async with start_child("proxy", proxy_spec(fixtures, stage.mode)) as proxy:
        base = proxy.ready["proxy"]
        url = f"{base}/ace/getstream?id={content_id}&format=ts"
        measure_from = trio.current_time() + stage.warmup
        until = measure_from + stage.seconds
        async with trio.open_nursery() as nursery:
            spread_over = 0.0 if stage.players <= INSTANT else 2.0
            for index, reader in enumerate(readers):
                if spread_over:
                    await trio.sleep(random.uniform(0, 2 * spread_over / stage.players))
                probe = probes[index // PROBE_EVERY] if index % PROBE_EVERY == 0 else None
                nursery.start_soon(ts_play, url, reader, until, measure_from, probe)
            await trio.sleep_until(measure_from)
            window_from = time.monotonic()
            cpu_before = proxy.cpu_seconds()
            requests_before = await fixtures.command("requests")
            await proxy.command("lag")
            await trio.sleep_until(until)
            cpu = proxy.cpu_seconds() - cpu_before
            window_to = time.monotonic()
            requests_after = await fixtures.command("requests")
            rss = proxy.rss_bytes()
            loop = await proxy.command("lag")
        listed = await keyframes_listed(base, content_id, stage.poll_seconds)
        joins = await warm_joins(base, content_id, stage.joins)
        stamps = await fixtures.command(f"stamps {content_id}")
        engine = await fixtures.command("engine")
    latencies = [
        x for p in probes for x in match(p.arrivals.items(), stamps["sent"], window_from, window_to)
    ]
    published = stamps["published"]
    from_published = [
        x for p in probes for x in match(p.arrivals.items(), published, window_from, window_to)
    ]
    listing = [at - published[key] for key, at in listed if key in published]
    requests = {
        kind: (requests_after.get(kind, 0) - requests_before.get(kind, 0)) * 60 / stage.seconds
        for kind in sorted(set(requests_after) | set(requests_before))
    }
    sessions = [s for s in engine["sessions"] if s["key"] == content_id]
    return {
        "mode": stage.mode,
        "players": stage.players,
        "seconds": stage.seconds,
        "cpu_seconds": cpu,
        "cpu_cores": cpu / stage.seconds,
        "rss_bytes": rss,
        "lag_ms": loop["lag_ms"],
        "gc": loop["gc"],
        "probes": len(probes),
        "latency_ms": spread(latencies, 1000),
        "latencies": latencies,
        "from_published_ms": spread(from_published, 1000),
        "from_published": from_published,
        "requests_per_channel_minute": requests,
        "keyframe_listed": listing,
        "listed_unmatched": len(listed) - len(listing),
        "ts_joins": joins["ts"],
        "hls_joins": joins["hls"],
        "delivered": spread([r.window_bytes / stage.seconds / rate for r in readers], 1),
        "stalled": sum(r.longest_silence > 2 * SEGMENT_SECONDS for r in readers),
        "cut": sum(r.cut for r in readers),
        "refused": sum(r.refused is not None for r in readers),
        "engine_sessions": len(sessions),
    }


async def keyframes_listed(base: str, content_id: str, seconds: float) -> list[tuple[str, float]]:
    """Reload the proxy's playlist every :data:`POLL` s for ``seconds``; for each segment listed
    anew, fetch it: (its first PES, named, when the playlist first listed it)."""
    if seconds <= 0:
        return []
    host, port, _ = split_url(base)
    connection = Connection(host, port)
    found: list[tuple[str, float]] = []
    try:
        answer = await connection.request("GET", f"/ace/getstream?id={content_id}")
        playlist = urljoin(base, answer.headers["location"])
        _, _, path = split_url(playlist)
        seen: set[str] | None = None
        deadline = trio.current_time() + seconds
        while trio.current_time() < deadline:
            began = trio.current_time()
            answer = await connection.request("GET", path)
            at = time.monotonic()
            _, uris = parse_playlist(answer.body.decode("utf-8", "replace"))
            fresh = [u for u in uris if seen is not None and u not in seen]
            seen = (seen or set()) | set(uris)
            for uri in fresh:
                _, _, segment_path = split_url(urljoin(playlist, uri))
                segment = await connection.request("GET", segment_path)
                starts = pes_starts(segment.body) if segment.status == 200 else []
                if starts:
                    found.append((key_text(starts[0]), at))
            await trio.sleep_until(began + POLL)
    finally:
        await connection.aclose()
    return found


async def ts_join(url: str) -> tuple[float, float]:
    """A new TS player: seconds to its first byte and to its first media byte."""
    reader = TsReader()
    with trio.move_on_after(10) as scope:

        def seen(_: bytes) -> None:
            if reader.first_media is not None:
                scope.cancel()

        await ts_play(url, reader, trio.current_time() + 10, 0.0, seen)
    return (
        reader.first_byte if reader.first_byte is not None else float("nan"),
        reader.first_media if reader.first_media is not None else float("nan"),
    )


async def hls_join(base: str, content_id: str) -> tuple[float, float]:
    """A new HLS player: seconds to its first playlist and to its first (newest) segment."""
    host, port, _ = split_url(base)
    connection = Connection(host, port)
    began = trio.current_time()
    try:
        answer = await connection.request("GET", f"/ace/getstream?id={content_id}")
        playlist = urljoin(base, answer.headers["location"])
        answer = await connection.request("GET", split_url(playlist)[2])
        first_playlist = trio.current_time() - began
        _, uris = parse_playlist(answer.body.decode("utf-8", "replace"))
        if answer.status != 200 or not uris:
            return first_playlist, float("nan")
        segment = await connection.request("GET", split_url(urljoin(playlist, uris[-1]))[2])
        if segment.status != 200:
            return first_playlist, float("nan")
        return first_playlist, trio.current_time() - began
    finally:
        await connection.aclose()


async def warm_joins(base: str, content_id: str, trials: int) -> dict[str, list[list[float]]]:
    """``trials`` TS and HLS joins, alternating, each at a random point of a segment."""
    joined: dict[str, list[list[float]]] = {"ts": [], "hls": []}
    url = f"{base}/ace/getstream?id={content_id}&format=ts"
    for _ in range(trials):
        await trio.sleep(random.uniform(0, SEGMENT_SECONDS))
        joined["ts"].append(list(await ts_join(url)))
        await trio.sleep(random.uniform(0, SEGMENT_SECONDS))
        joined["hls"].append(list(await hls_join(base, content_id)))
    return joined


async def run(
    plan: Sequence[Stage], rounds: int, media: str | None, duration: float, rate: float
) -> list[list[dict[str, Any]]]:
    """Every round: each mode in turn, its stages one after the other."""
    spec = {
        "engine_ports": 1,
        "backlog": 6.0,
        "duration": duration,
        "list_size": 6,
        "seamless": True,
        "formats": "both",
        "stamps": True,
        **({"media": media} if media else {}),
    }
    results: list[list[dict[str, Any]]] = []
    async with start_child("fixtures", spec) as fixtures:
        for number in range(rounds):
            rows = []
            for stage in plan:
                print(
                    f"{NAME}: round {number + 1}/{rounds}, upstream {stage.mode}, "
                    f"{stage.players} TS players",
                    file=sys.stderr,
                )
                row = await measure(fixtures, stage, rate)
                row["round"] = number + 1
                rows.append(row)
            results.append(rows)
    return results


# ---- summaries -----------------------------------------------------------------------------------


def marginals(rounds: Sequence[Sequence[dict[str, Any]]], mode: str) -> list[float]:
    """CPU ms per extra TS player-minute, one per round, from that round's rows of ``mode``."""
    return [marginal_ms([r for r in rows if r["mode"] == mode]) for rows in rounds]


def requests_summary(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Median over ``rows`` of each kind's requests per channel-minute, and of their total."""
    kinds = sorted({kind for r in rows for kind in r["requests_per_channel_minute"]})
    summary = {
        kind: statistics.median(r["requests_per_channel_minute"].get(kind, 0.0) for r in rows)
        for kind in kinds
    }
    summary["all"] = statistics.median(sum(r["requests_per_channel_minute"].values()) for r in rows)
    return summary


def segmenting_percent(seconds: int, runs: int) -> list[float]:
    """% of a core the segmenter takes per second of a 4 Mbit/s stream, one figure per run."""
    with tempfile.TemporaryDirectory() as folder:
        data = segmenter_bench.make_stream(Path(folder) / "stream.ts", seconds)
    stream_seconds = len(data) * 8 / segmenter_bench.MUX_RATE
    return [
        100
        * segmenter_bench.cpu_seconds(segmenter_bench.segment, data, READ_BYTES)
        / stream_seconds
        for _ in range(runs)
    ]


RAW_SAMPLES = ("latencies", "from_published")
"""Per-arrival samples (~40,000 a stage at 1,000 players): summarised in the JSON, not kept."""


def without_samples(row: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in row.items() if key not in RAW_SAMPLES}


def _median(values: Sequence[float]) -> float:
    return percentile(list(values), 50)


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(NAME, __doc__ or "")
    parser.add_argument("--players", type=int, default=None, help="most TS players (1000)")
    args = parser.parse_args(argv)
    most = args.players or (100 if args.quick else 1000)
    fewest = 10
    rounds = args.runs or (1 if args.quick else 2)
    seconds, warmup = (6.0, 4.0) if args.quick else (30.0, 6.0)
    poll_seconds, joins = (5.0, 3) if args.quick else (12.0, 8)
    started = begin()
    with tempfile.TemporaryDirectory() as folder:
        made = make_media(Path(folder))
        media_list = load_media(folder) if made else demo_media()
        duration = SEGMENT_SECONDS if made else 2.0
        rate = bitrate_bits(media_list, duration) / 8
        plan = [
            stage
            for mode in MODES
            for stage in (
                Stage(mode, fewest, seconds, warmup, poll_seconds, joins),
                Stage(mode, most, seconds, warmup),
            )
        ]
        results = trio.run(run, plan, rounds, folder if made else None, duration, rate)
    segmenting = segmenting_percent(10 if args.quick else 20, 3)
    media_text = (
        f"{len(media_list)} × {duration:g} s H.264 + AAC by ffmpeg, "
        f"{rate * 8 / 1000:.0f} kbit/s, looped seamlessly"
        if made
        else f"demo media (no ffmpeg): 6 × 2 s, {rate * 8 / 1000:.0f} kbit/s"
    )
    every = [row for rows in results for row in rows]
    summary: dict[str, dict[str, Any]] = {}
    for mode in MODES:
        mine = [r for r in every if r["mode"] == mode]
        small = [r for r in mine if r["players"] == fewest]
        large = [r for r in mine if r["players"] == most]
        cpu = marginals(results, mode)
        summary[mode] = {
            "cpu_ms_per_extra_player_minute": {
                "rounds": cpu,
                "median": _median(cpu),
                "min": min(cpu),
                "max": max(cpu),
            },
            "latency_ms": spread([x for r in large for x in r["latencies"]], 1000),
            "latency_p99_ms_per_round": [r["latency_ms"]["p99"] for r in large],
            "from_published_ms": spread([x for r in large for x in r["from_published"]], 1000),
            "keyframe_listed_ms": spread([x for r in small for x in r["keyframe_listed"]], 1000),
            "requests_per_channel_minute": requests_summary(mine),
            "ts_first_byte_ms": spread([j[0] for r in small for j in r["ts_joins"]], 1000),
            "ts_first_media_ms": spread([j[1] for r in small for j in r["ts_joins"]], 1000),
            "hls_first_playlist_ms": spread([j[0] for r in small for j in r["hls_joins"]], 1000),
            "hls_first_segment_ms": spread([j[1] for r in small for j in r["hls_joins"]], 1000),
            "stalled_or_cut_at_most": sum(r["stalled"] + r["cut"] for r in large),
            "engine_sessions_max": max(r["engine_sessions"] for r in mine),
        }
    ts = summary["ts"]
    targets = [
        Target(
            f"CPU ms per extra TS player-minute, upstream ts ({fewest} → {most}, "
            f"median of {rounds})",
            ts["cpu_ms_per_extra_player_minute"]["median"],
            "<=",
            CPU_TARGET_MS,
            "ms",
        ),
        Target(
            f"engine byte → TS player byte p99, upstream ts, {most} players",
            ts["latency_ms"]["p99"],
            "<=",
            LATENCY_TARGET_MS,
            "ms",
        ),
        Target(
            "segmenting a 4 Mbit/s channel (median of 3)",
            _median(segmenting),
            "<=",
            SEGMENTING_TARGET_PERCENT,
            "% of a core",
        ),
    ]
    figures: list[tuple[str, Callable[[dict[str, Any]], float]]] = [
        (
            "CPU ms per extra TS player-minute, median",
            lambda s: s["cpu_ms_per_extra_player_minute"]["median"],
        ),
        ("… min over rounds", lambda s: s["cpu_ms_per_extra_player_minute"]["min"]),
        ("… max over rounds", lambda s: s["cpu_ms_per_extra_player_minute"]["max"]),
        (f"engine → TS player ms at {most}, p50", lambda s: s["latency_ms"]["median"]),
        (f"engine → TS player ms at {most}, p99", lambda s: s["latency_ms"]["p99"]),
        (f"engine → TS player ms at {most}, max", lambda s: s["latency_ms"]["max"]),
        ("… p99 worst round", lambda s: max(s["latency_p99_ms_per_round"])),
        ("… samples", lambda s: s["latency_ms"]["n"]),
        (
            f"engine had it → TS player ms at {most}, p50",
            lambda s: s["from_published_ms"]["median"],
        ),
        (f"engine had it → TS player ms at {most}, p99", lambda s: s["from_published_ms"]["p99"]),
        ("engine requests per channel-minute", lambda s: s["requests_per_channel_minute"]["all"]),
        ("keyframe at engine → listed ms, median", lambda s: s["keyframe_listed_ms"]["median"]),
        ("keyframe at engine → listed ms, p99", lambda s: s["keyframe_listed_ms"]["p99"]),
        ("… samples", lambda s: s["keyframe_listed_ms"]["n"]),
        ("warm join: TS first media ms, median", lambda s: s["ts_first_media_ms"]["median"]),
        ("warm join: TS first media ms, max", lambda s: s["ts_first_media_ms"]["max"]),
        ("warm join: HLS first segment ms, median", lambda s: s["hls_first_segment_ms"]["median"]),
        ("warm join: HLS first segment ms, max", lambda s: s["hls_first_segment_ms"]["max"]),
        ("… joins", lambda s: s["ts_first_media_ms"]["n"]),
        (f"stalled or cut, {most} TS (all rounds)", lambda s: s["stalled_or_cut_at_most"]),
        ("engine sessions per channel (max)", lambda s: s["engine_sessions_max"]),
    ]
    side_by_side = [(name, *(value(summary[m]) for m in MODES)) for name, value in figures]
    kinds = sorted({k for m in MODES for k in summary[m]["requests_per_channel_minute"]})
    request_rows = [
        (kind, *(summary[m]["requests_per_channel_minute"].get(kind, 0.0) for m in MODES))
        for kind in kinds
    ]
    stage_rows = [
        (
            r["round"],
            r["mode"],
            r["players"],
            r["cpu_cores"] * 100,
            1000 * r["cpu_seconds"] / (r["players"] * r["seconds"] / 60),
            r["rss_bytes"] / 2**20,
            r["delivered"]["min"],
            r["stalled"],
            r["cut"],
            r["probes"],
            r["latency_ms"]["median"],
            r["latency_ms"]["p99"],
            r["lag_ms"]["p99"],
            r["gc"]["max_ms"],
        )
        for r in every
    ]
    stage_columns = [
        "round",
        "upstream",
        "TS players",
        "proxy CPU %",
        "CPU ms / player-min",
        "RSS MiB",
        "rate min ×",
        "stalled",
        "cut",
        "probes",
        "engine → player p50 ms",
        "p99 ms",
        "loop lag p99 ms",
        "GC max ms",
    ]
    md = write_result(
        NAME,
        out=args.out,
        quick=args.quick,
        started=started,
        setup={
            "media": media_text,
            "order": "per round: ts (10, then most players), hls (10, then most)",
            "rounds": rounds,
            "measure_seconds": seconds,
            "warmup_seconds": warmup,
            "players": f"{fewest} and {most} TS players, one cold channel per proxy",
            "probes": f"every {PROBE_EVERY}th TS player",
            "keyframe poll": f"{POLL * 1000:g} ms, {poll_seconds:g} s after the 10-player window",
            "warm joins": f"{joins} TS + {joins} HLS per round and mode, one at a time",
            "engine": "simulated, 6 s on air at open, each segment sent as a burst when made",
            "segmenter": f"4 Mbit/s ffmpeg stream, reads of {READ_BYTES // 1024} KiB",
        },
        tables=[
            ("Side by side (medians over rounds unless said)", ["figure", *MODES], side_by_side),
            (
                "Requests to the engine per channel-minute, by kind (median)",
                ["kind", *MODES],
                request_rows,
            ),
            ("Every stage", stage_columns, stage_rows),
            (
                "Segmenting a 4 Mbit/s channel, % of a core per run",
                ["run", "%"],
                [(number + 1, value) for number, value in enumerate(segmenting)],
            ),
        ],
        targets=targets,
        data={
            "summary": summary,
            "rounds": [[without_samples(row) for row in rows] for rows in results],
            "segmenting_percent": segmenting,
        },
        plot=None,
        notes=[
            "CPU per extra TS player-minute: (proxy CPU with the most players − with 10) over "
            "the extra players × minutes of the window, within one round; its median and range "
            "over rounds. CPU: the proxy process's user + system time.",
            "Engine → player latency: the simulated engine notes (CLOCK_MONOTONIC) when each PES "
            "header left it (on its MPEG-TS stream, or in a segment answer); every "
            f"{PROBE_EVERY}th TS player notes when the same (PID, PTS) first reached it; each "
            "arrival within the window is one sample. In the hls mode the engine sends a segment "
            "when the proxy downloads it; 'engine had it' counts from the segment's appearance "
            "on the engine's playlist instead (ts: the same as sent). It includes the load "
            "generator's own delays (it shares the machine with the proxy and the engine).",
            "Keyframe → listed: from when the engine had the keyframe (ts: sent it; hls: its "
            "segment appears on the engine's playlist) to the first poll of the proxy's playlist "
            f"that lists the segment opening with it; an upper bound by ≤ {POLL * 1000:g} ms "
            "plus one playlist request. The simulated engine sends each segment in one burst "
            "when it has it, the moment its playlist lists it: the ts mode cuts a segment when "
            "the next one's keyframe arrives, one segment later; an engine relaying bytes as "
            "they come would send that keyframe up to a segment earlier than its playlist "
            "lists the segment.",
            "Requests per channel-minute: every request the engine answered over the window "
            "(players do not change them), by kind; the engine watch's idle connection is no "
            "request.",
            "Warm joins: one new player at a time on the channel after its window, each at a "
            "random point of a segment; first media: the first byte that is not a null packet.",
            "Segmenting: benchmarks.segmenter's measure (the segmenter alone, no socket), "
            "in this run.",
        ],
    )
    print(md.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
