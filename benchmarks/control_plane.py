"""control_plane: 50 channels started and stopped at once against a slow engine and orchestrator.

The engine takes 3 s to open a session, the orchestrator 5 s to answer each event. While 50
channels start and are deleted (each after a random 0.5–5 s, so some while their session is still
opening), a probe asks ``/proxy/status`` every 10 ms and a player reads another channel that was
already running. The same probe and player on the same server with no churn give the reference.

"Tasks gone" is read from the probe's own answers: a channel is gone at the first probe answer,
begun after its DELETE was answered, that lists it neither under ``channels`` nor ``closing``
(``closing`` holds a channel until its last task has returned). It is an upper bound with the
probe's resolution (10 ms plus one probe's latency).
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from trioproxy.testing.players import PlayerLog, random_content_id

from .loadgen import Connection, play, split_url
from .report import Target, base_parser, begin, pyplot, write_result
from .servers import Child, start_child
from .stats import ratio, spread

NAME = "control_plane"
CHANNELS = 50
PROBE_INTERVAL = 0.01
OPEN_DELAY = 3.0
ORCHESTRATOR_DELAY = 5.0
GONE_TIMEOUT = 45.0
STREAMS_PER_ENGINE = 3
BURST = 1.0
"""Seconds after the churn starts that hold the start burst (50 getstreams + 50 playlists)."""


@dataclass
class Probe:
    """Answers of the status probe: (sent, received, names listed)."""

    answers: list[tuple[float, float, frozenset[str]]] = field(default_factory=list)
    errors: int = 0

    def latencies(self, start: float, end: float) -> list[float]:
        return [r - s for s, r, _ in self.answers if start <= s < end]

    def gone_at(self, name: str, after: float) -> float | None:
        for sent, received, names in self.answers:
            if sent >= after and name not in names:
                return received
        return None


async def probe(base: str, until: float, result: Probe) -> None:
    host, port, _ = split_url(base)
    connection = Connection(host, port)
    try:
        tick = trio.current_time()
        while tick < until:
            await trio.sleep_until(tick)
            sent = trio.current_time()
            try:
                response = await connection.request("GET", "/proxy/status")
            except (OSError, EOFError, trio.BrokenResourceError):
                result.errors += 1
                await connection.aclose()
                continue
            received = trio.current_time()
            if response.status != 200:
                result.errors += 1
            else:
                status = json.loads(response.body)
                names = frozenset(
                    c["channel"] for part in ("channels", "closing") for c in status[part]
                )
                result.answers.append((sent, received, names))
            tick = max(tick + PROBE_INTERVAL, trio.current_time())
    finally:
        await connection.aclose()


@dataclass
class Churn:
    name: str
    started: float = 0.0
    start_latency: float = float("nan")
    delete_sent: float = 0.0
    delete_latency: float = float("nan")
    delete_status: int = 0
    playlist_status: int = 0


async def churn_one(base: str, churn: Churn, hold: float) -> None:
    """Start a channel (getstream, then its playlist, as a player would); DELETE it after
    ``hold`` seconds."""
    host, port, _ = split_url(base)
    control = Connection(host, port)
    player = Connection(host, port)

    async def wait_playlist(location: str) -> None:
        response = await player.request("GET", location)
        churn.playlist_status = response.status

    try:
        churn.started = trio.current_time()
        response = await control.request("GET", f"/ace/getstream?id={churn.name}")
        churn.start_latency = trio.current_time() - churn.started
        async with trio.open_nursery() as nursery:
            if response.status == 302:
                nursery.start_soon(wait_playlist, response.headers["location"])
            await trio.sleep_until(churn.started + hold)
            churn.delete_sent = trio.current_time()
            answer = await control.request("DELETE", f"/proxy/channels/{churn.name}")
            churn.delete_latency = trio.current_time() - churn.delete_sent
            churn.delete_status = answer.status
            nursery.cancel_scope.deadline = trio.current_time() + 5.0
    finally:
        await control.aclose()
        await player.aclose()


async def one_run(
    proxy: Child, idle_seconds: float, player_log: PlayerLog, result: dict[str, Any]
) -> None:
    base = proxy.ready["proxy"]
    status = Probe()
    churns = [Churn(random_content_id()) for _ in range(CHANNELS)]
    begin = trio.current_time()
    idle_end = begin + idle_seconds
    async with trio.open_nursery() as nursery:
        probe_scope = trio.CancelScope()

        async def run_probe() -> None:
            with probe_scope:
                await probe(base, begin + idle_seconds + GONE_TIMEOUT + 30, status)

        nursery.start_soon(run_probe)
        await proxy.command("lag")
        await trio.sleep_until(idle_end)
        idle_loop = await proxy.command("lag")
        load_start = trio.current_time()
        async with trio.open_nursery() as churners:
            for churn in churns:
                churners.start_soon(churn_one, base, churn, random.uniform(0.5, 5.0))
        deleted = trio.current_time()
        # Wait until every channel is gone from the status (or give up).
        with trio.move_on_after(GONE_TIMEOUT):
            while True:
                await trio.sleep(0.1)
                if (
                    status.answers
                    and not (status.answers[-1][2] & {c.name for c in churns})
                    and status.answers[-1][0] > deleted
                ):
                    break
        load_end = trio.current_time()
        load_loop = await proxy.command("lag")
        probe_scope.cancel()
    gone = []
    for churn in churns:
        at = status.gone_at(churn.name, churn.delete_sent + churn.delete_latency)
        gone.append(float("nan") if at is None else at - churn.delete_sent)
    result.update(
        {
            "idle_probe": status.latencies(begin, idle_end),
            "load_probe": status.latencies(load_start, load_end),
            "burst_probe": status.latencies(load_start, load_start + BURST),
            "after_burst_probe": status.latencies(load_start + BURST, load_end),
            "idle_window": (begin, idle_end),
            "load_window": (load_start, load_end),
            "load_seconds": load_end - load_start,
            "idle_loop": idle_loop,
            "load_loop": load_loop,
            "probe_errors": status.errors,
            "start_latencies": [c.start_latency for c in churns],
            "delete_latencies": [c.delete_latency for c in churns],
            "delete_statuses": sorted({c.delete_status for c in churns}),
            "holds": [c.delete_sent - c.started for c in churns],
            "gone_seconds": gone,
            "playlist_statuses": sorted({c.playlist_status for c in churns}),
        }
    )


async def run(runs: int, idle_seconds: float) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    # Engines laid out as in production: 3 channels each (ACEXY_MAX_STREAMS_PER_ENGINE).
    fixture_spec = {
        "engine_ports": -(-(CHANNELS + 1) // STREAMS_PER_ENGINE) + 1,
        "open_delay": OPEN_DELAY,
        "orchestrator_delay": ORCHESTRATOR_DELAY,
        "backlog": 6.0,
    }
    async with start_child("fixtures", fixture_spec) as fixtures:
        config = {
            "engines": fixtures.ready["engines"],
            "orchestrator_url": fixtures.ready["orchestrator"],
            "max_streams_per_engine": STREAMS_PER_ENGINE,
            # The scenario is every channel starting at once: no admission cap may refuse one.
            "max_channels": 1000,
            "max_opening_per_engine": STREAMS_PER_ENGINE,
            "proxy_grace_period": 120.0,
            "log_level": "WARNING",
        }
        async with start_child("proxy", {"config": config, "lag": True}) as proxy:
            base = proxy.ready["proxy"]
            player_log = PlayerLog()
            async with trio.open_nursery() as nursery:
                player_scope = trio.CancelScope()

                async def player() -> None:
                    with player_scope:
                        await play(base, random_content_id(), float("inf"), player_log)

                nursery.start_soon(player)
                # The watched channel is running (session open, first segments in) before we start.
                await player_log.first_segment.wait()
                for index in range(runs):
                    print(f"{NAME}: run {index + 1}/{runs}", file=sys.stderr)
                    result: dict[str, Any] = {"run": index}
                    await one_run(proxy, idle_seconds, player_log, result)
                    result["idle_segments"], _, idle_err = player_log.window(*result["idle_window"])
                    result["load_segments"], _, load_err = player_log.window(*result["load_window"])
                    result["player_errors"] = idle_err + load_err
                    results.append(result)
                player_scope.cancel()
        events = await fixtures.command("orchestrator")
        engine = await fixtures.command("engine")
    results[-1]["orchestrator"] = events
    results[-1]["engine_sessions_opened"] = len(engine["sessions"])
    results[-1]["engine_sessions_left_open"] = sum(
        1 for s in engine["sessions"] if not s["stopped"]
    )
    return results


def plot(idle: list[float], load: list[float], gone: list[float], path: Path) -> None:
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.2), dpi=90)
    for values, label in ((idle, "idle"), (load, "50 channels churning")):
        ordered = sorted(v * 1000 for v in values)
        if ordered:
            left.plot(ordered, [i / len(ordered) for i in range(len(ordered))], label=label)
    left.set_xscale("log")
    left.set_xlabel("/proxy/status latency (ms)")
    left.set_ylabel("fraction of probes")
    left.legend(fontsize=7)
    right.hist([g for g in gone if g == g], bins=20, color="gray")
    right.set_xlabel("DELETE → tasks gone (s)")
    right.set_ylabel("channels")
    fig.suptitle("control_plane: slow engine (3 s) and orchestrator (5 s/event)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(NAME, __doc__ or "")
    args = parser.parse_args(argv)
    runs = args.runs or (1 if args.quick else 3)
    idle_seconds = 4.0 if args.quick else 10.0
    started = begin()
    results = trio.run(run, runs, idle_seconds)
    idle = [x for r in results for x in r["idle_probe"]]
    load = [x for r in results for x in r["load_probe"]]
    seg_idle = [x for r in results for x in r["idle_segments"]]
    seg_load = [x for r in results for x in r["load_segments"]]
    deletes = [x for r in results for x in r["delete_latencies"]]
    starts = [x for r in results for x in r["start_latencies"]]
    gone = [x for r in results for x in r["gone_seconds"]]
    s_idle, s_load = spread(idle, 1000), spread(load, 1000)
    s_del, s_gone = spread(deletes, 1000), spread([g for g in gone if g == g])
    targets = [
        Target("probe p99 under load / idle p99", ratio(s_load["p99"], s_idle["p99"]), "<=", 2.0),
        Target("DELETE answer, median", s_del["median"], "<=", 5.0, "ms"),
    ]

    def row(label: str, s: dict[str, Any], unit: str = "ms") -> tuple[Any, ...]:
        return (label, s["n"], s["median"], s["p99"], s["max"], unit)

    columns = ["what", "samples", "median", "p99", "max", "unit"]
    table = [
        row("status probe, idle", s_idle),
        row("status probe, under churn", s_load),
        row(
            f"  … in the first {BURST:g} s (the start burst)",
            spread([x for r in results for x in r["burst_probe"]], 1000),
        ),
        row(
            f"  … after the first {BURST:g} s",
            spread([x for r in results for x in r["after_burst_probe"]], 1000),
        ),
        (
            "ratio churn / idle",
            "",
            ratio(s_load["median"], s_idle["median"]),
            ratio(s_load["p99"], s_idle["p99"]),
            ratio(s_load["max"], s_idle["max"]),
            "×",
        ),
        row("player segment, idle", spread(seg_idle, 1000)),
        row("player segment, under churn", spread(seg_load, 1000)),
        row("getstream answer (302)", spread(starts, 1000)),
        row("DELETE answer (202)", s_del),
        row("DELETE → tasks gone", s_gone, "s"),
        (
            "proxy loop lag, idle (worst run)",
            sum(r["idle_loop"]["lag_ms"]["n"] for r in results),
            max(r["idle_loop"]["lag_ms"]["median"] for r in results),
            max(r["idle_loop"]["lag_ms"]["p99"] for r in results),
            max(r["idle_loop"]["lag_ms"]["max"] for r in results),
            "ms",
        ),
        (
            "proxy loop lag, under churn (worst run)",
            sum(r["load_loop"]["lag_ms"]["n"] for r in results),
            max(r["load_loop"]["lag_ms"]["median"] for r in results),
            max(r["load_loop"]["lag_ms"]["p99"] for r in results),
            max(r["load_loop"]["lag_ms"]["max"] for r in results),
            "ms",
        ),
        (
            "proxy GC runs, under churn: count / longest",
            sum(r["load_loop"]["gc"]["count"] for r in results),
            "",
            "",
            max(r["load_loop"]["gc"]["max_ms"] for r in results),
            "ms",
        ),
    ]
    last = results[-1]
    md = write_result(
        NAME,
        out=args.out,
        quick=args.quick,
        started=started,
        setup={
            "channels": CHANNELS,
            "streams_per_engine": STREAMS_PER_ENGINE,
            "engine_open_delay_s": OPEN_DELAY,
            "orchestrator_delay_s": ORCHESTRATOR_DELAY,
            "probe_interval_ms": PROBE_INTERVAL * 1000,
            "idle_seconds": idle_seconds,
            "runs": runs,
            "load generator": "separate process (raw HTTP/1.1 on Trio)",
        },
        tables=[("Latencies", columns, table)],
        targets=targets,
        data={
            "runs": [
                {
                    k: v
                    for k, v in r.items()
                    if k not in ("idle_probe", "load_probe", "burst_probe", "after_burst_probe")
                }
                for r in results
            ],
            "idle_probe_ms": s_idle,
            "load_probe_ms": s_load,
            "delete_ms": s_del,
            "gone_s": s_gone,
            "channels_never_seen_gone": sum(1 for g in gone if g != g),
        },
        plot=lambda path: plot(idle, load, gone, path),
        notes=[
            f"DELETE statuses {sorted({s for r in results for s in r['delete_statuses']})}; "
            f"probe errors {sum(r['probe_errors'] for r in results)}; "
            f"player errors {sum(r['player_errors'] for r in results)}; "
            f"engine sessions opened {last.get('engine_sessions_opened')}, "
            f"left open {last.get('engine_sessions_left_open')}; "
            f"orchestrator events {last.get('orchestrator', {}).get('events')}.",
            "Tasks gone includes the shielded teardown: waiting out a session still opening "
            "(3 s), the engine stop, and delivering stream_started then stream_ended (5 s each).",
        ],
    )
    print(md.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
