"""Soak: the real service for a bounded time, players coming and going, faults at random.

    python -m benchmarks.soak --minutes 30

Runs simulated engines (with fault injection) and the fake orchestrator (it keeps exact books) in
this process, all on 127.0.0.1 port 0, and ``python -m trioproxy serve`` as a child process. Players
join and leave random channels (some reload 50 times a second, some leave mid-segment); every
~20 s one fault is injected for a bounded time (engine playlist 5xx or garbage, a stalled
playlist, segments 404/5xx/truncated, a session the engine ends itself, session opens failing or
slow, the orchestrator failing, slow, answering garbage or ending a stream itself, a DELETE).

At the end players stop, faults are cleared, every channel is left to close, and the proxy is
sent SIGTERM. Then the books must balance exactly: every stream_started the orchestrator
accepted has exactly one stream_ended (none for streams the orchestrator ended itself), no
stream_ended for an unknown id, and every engine session opened was stopped. RSS and open file
descriptors of the proxy are sampled throughout: ``benchmarks/results/soak.json`` and
``soak.png``. Exit status 0 when everything balanced and no answer was a 500.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import signal
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import trio
from hypercorn.trio import serve as hypercorn_serve

from trioproxy.service import hypercorn_config
from trioproxy.testing.engine import SimulatedEngine, demo_media
from trioproxy.testing.faults import FaultyEngine
from trioproxy.testing.orchestrator import FakeOrchestrator

from ._soak_support import Injector, Players, plot

__all__ = ["main"]

log = logging.getLogger("soak")

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
API_KEY = "soak-" + "k" * 27
SETTLE_TIMEOUT = 240.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _proc_stats(pid: int) -> tuple[int, int]:
    """RSS in KiB and the number of open file descriptors of ``pid``."""
    rss = 0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def _proxy_env(
    args: argparse.Namespace, port: int, engines: list[str], orchestrator: str
) -> dict[str, str]:
    per_engine = math.ceil(args.channels / len(engines)) + 2
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("TRIOPROXY_", "HLS_", "PROXY_"))
    }
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "TRIOPROXY_BIND": f"127.0.0.1:{port}",
            "TRIOPROXY_ENGINES": ",".join(engines),
            "ORCHESTRATOR_URL": orchestrator,
            "API_KEY": API_KEY,
            "ACEXY_MAX_STREAMS_PER_ENGINE": str(per_engine),
            "TRIOPROXY_MAX_CHANNELS": str(args.channels),
            # Every player comes from 127.0.0.1: no per-address caps.
            "TRIOPROXY_MAX_PLAYERS_PER_ADDRESS": "0",
            "TRIOPROXY_MAX_CHANNELS_PER_ADDRESS": "0",
            "TRIOPROXY_MAX_OPENING_PER_ADDRESS": "0",
            "TRIOPROXY_MAX_CONNECTIONS_PER_ADDRESS": "0",
            "PROXY_GRACE_PERIOD": "5",
            "HLS_CLIENT_IDLE_TIMEOUT": "8",
            "HLS_BUFFER_READY_TIMEOUT": "15",
            "TRIOPROXY_FAILURE_BACKOFF": "5",
            "TRIOPROXY_UPSTREAM_TIMEOUT": "15",
            "TRIOPROXY_STALL_TIMEOUT": "20",
            "TRIOPROXY_STAT_INTERVAL": "5",
            "TRIOPROXY_WATCH_INTERVAL": "5",
            "TRIOPROXY_SESSION_TIMEOUT": "10",
            "TRIOPROXY_LOG_LEVEL": "INFO",
        }
    )
    return env


async def _wait_healthy(http: httpx.AsyncClient, base: str) -> None:
    with trio.fail_after(30):
        while True:
            try:
                if (await http.get(f"{base}/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await trio.sleep(0.2)


async def _status(http: httpx.AsyncClient, base: str) -> dict[str, Any] | None:
    try:
        with trio.move_on_after(5):
            response = await http.get(f"{base}/proxy/status")
            return dict(response.json())
    except (httpx.HTTPError, ValueError):
        return None
    return None


async def _sample(
    http: httpx.AsyncClient,
    base: str,
    pid: int,
    began: float,
    players: Players,
    samples: list[dict[str, Any]],
) -> None:
    rss, fds = _proc_stats(pid)
    status = await _status(http, base)
    samples.append(
        {
            "t": round(trio.current_time() - began, 1),
            "rss_kib": rss,
            "fds": fds,
            "channels": len(status["channels"]) if status else None,
            "closing": len(status["closing"]) if status else None,
            "players": players.active,
        }
    )


async def _sampler(
    http: httpx.AsyncClient,
    base: str,
    pid: int,
    began: float,
    every: float,
    players: Players,
    samples: list[dict[str, Any]],
) -> None:
    deadline = trio.current_time()
    while True:
        await _sample(http, base, pid, began, players, samples)
        deadline += every
        await trio.sleep_until(deadline)


async def _spawn_players(
    http: httpx.AsyncClient, players: Players, target: int, rng: random.Random
) -> None:
    async with trio.open_nursery() as nursery:
        while True:
            if players.active < target:
                nursery.start_soon(players.player, http, rng.uniform(15.0, 240.0))
            await trio.sleep(rng.expovariate(target / 60.0))


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    media = demo_media()
    engines = [
        FaultyEngine(SimulatedEngine(media, durations=[2.0], list_size=6, backlog=6.0))
        for _ in range(args.engines)
    ]
    orchestrator = FakeOrchestrator(api_key=API_KEY)
    keys = [f"{rng.getrandbits(160):040x}" for _ in range(args.channels)]
    output: Path = args.output
    output.parent.mkdir(parents=True, exist_ok=True)
    # The proxy's own log, beside the results; a name of its own per run (never shared).
    proxy_log = output.with_name(f"{output.stem}-proxy-{os.getpid()}.log.tmp")
    samples: list[dict[str, Any]] = []
    limits = httpx.Limits(max_connections=4 * args.players, max_keepalive_connections=args.players)
    async with (
        httpx.AsyncClient(timeout=30.0, limits=limits) as http,
        trio.open_nursery() as servers,
    ):
        engine_urls = [
            (await servers.start(hypercorn_serve, engine, hypercorn_config("127.0.0.1:0")))[0]
            for engine in engines
        ]
        orch_url = (
            await servers.start(hypercorn_serve, orchestrator, hypercorn_config("127.0.0.1:0"))
        )[0]
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        env = _proxy_env(args, port, engine_urls, orch_url)
        with proxy_log.open("wb") as log_file:
            proxy = await trio.lowlevel.open_process(
                [sys.executable, "-m", "trioproxy", "serve"],
                env=env,
                stdout=log_file,
                stderr=log_file,
            )
        try:
            await _wait_healthy(http, base)
            log.info("proxy pid %d at %s; engines %s", proxy.pid, base, engine_urls)
            began = trio.current_time()
            wall_began = time.time()
            players = Players(base, keys, random.Random(rng.random()))
            injector = Injector(
                engines, orchestrator, base, API_KEY, random.Random(rng.random()), began
            )
            async with (
                httpx.AsyncClient(timeout=30.0, limits=limits) as player_http,
                trio.open_nursery() as load,
            ):
                load.start_soon(
                    _sampler, http, base, proxy.pid, began, args.sample, players, samples
                )
                load.start_soon(_spawn_players, player_http, players, args.players, rng)
                load.start_soon(injector.run, http, args.fault_every)
                await trio.sleep(args.minutes * 60.0)
                log.info("load phase over: stopping players and faults")
                load.cancel_scope.cancel()
            # The players' connections are closed now: the last samples count the proxy's own.
            for engine in engines:
                engine.faults.clear()
                engine.open_non_json = False
                engine.inner.session_error = None
                engine.inner.open_delay = 0.0
            orchestrator.status, orchestrator.delay, orchestrator.list_body = 200, 0.0, None
            # Every channel closes on its own (no players → grace period) and drains its events.
            settled = False
            with trio.move_on_after(SETTLE_TIMEOUT):
                while True:
                    await _sample(http, base, proxy.pid, began, players, samples)
                    status = await _status(http, base)
                    if status is not None and not status["channels"] and not status["closing"]:
                        settled = True
                        break
                    await trio.sleep(1.0)
            await trio.sleep(args.sample)
            await _sample(http, base, proxy.pid, began, players, samples)
            settle_seconds = round(trio.current_time() - began - args.minutes * 60.0, 1)
            final_status = await _status(http, base)
            proxy.send_signal(signal.SIGTERM)
            with trio.move_on_after(60):
                await proxy.wait()
            if proxy.returncode is None:
                proxy.kill()
                await proxy.wait()
        finally:
            if proxy.returncode is None:  # the soak itself was interrupted
                proxy.kill()
        servers.cancel_scope.cancel()
    text = proxy_log.read_text(errors="replace")
    return _report(
        args,
        engines,
        orchestrator,
        players,
        injector,
        samples,
        {
            "settled": settled,
            "settle_seconds": settle_seconds,
            "exit_code": proxy.returncode,
            "wall_seconds": round(time.time() - wall_began, 1),
            "log_tracebacks": text.count("Traceback"),
            "log_internal_errors": text.count("internal error"),
            "log_error_lines": sum(1 for line in text.splitlines() if " ERROR " in line),
            "limits": final_status.get("limits") if final_status else None,
        },
    )


def _report(
    args: argparse.Namespace,
    engines: list[FaultyEngine],
    orchestrator: FakeOrchestrator,
    players: Players,
    injector: Injector,
    samples: list[dict[str, Any]],
    proxy: dict[str, Any],
) -> dict[str, Any]:
    opened = sum(len(e.inner.sessions) for e in engines)
    stopped_by_proxy = sum(len(e.inner.stops) for e in engines)
    ended_by_engine = sum(len(e.ended_by_engine) for e in engines)
    still_open = sum(len(e.inner.open_sessions) for e in engines)
    started = orchestrator.started
    ended = orchestrator.ended
    ended_here = orchestrator.ended_here
    expected_events = len(started) + len(set(started) - ended_here)
    sent_events = sum(started.values())
    sent_events += sum(n for sid, n in ended.items() if sid not in ended_here)
    unbalanced = sorted(
        sid for sid in started if sid not in ended_here and (started[sid], ended[sid]) != (1, 1)
    )
    with_stream = {s.playback_session_id for s in orchestrator.streams.values()}
    all_sessions = {sid for e in engines for sid in e.inner.sessions}
    statuses = dict(sorted(players.log.counts.items()))
    server_errors = sum(n for k, n in statuses.items() if k.endswith(" 500"))
    rss = [s["rss_kib"] for s in samples]
    fds = [s["fds"] for s in samples]
    events_ok = sent_events == expected_events and not unbalanced and not orchestrator.ended_unknown
    sessions_ok = still_open == 0 and opened == stopped_by_proxy + ended_by_engine
    return {
        "command": f"python -m benchmarks.soak --minutes {args.minutes:g}",
        "settings": {k: v for k, v in vars(args).items() if k != "output"},
        "duration_minutes": args.minutes,
        "ok": bool(events_ok and sessions_ok and server_errors == 0 and proxy["settled"]),
        "rss_kib": {"start": rss[0], "end": rss[-1], "max": max(rss), "min": min(rss)},
        "fds": {"start": fds[0], "end": fds[-1], "max": max(fds)},
        "events": {
            "expected": expected_events,
            "sent": sent_events,
            "match": sent_events == expected_events,
            "stream_started_accepted": sum(started.values()),
            "stream_ended_accepted": sum(ended.values()),
            "streams": len(started),
            "ended_by_orchestrator": len(ended_here),
            "ended_by_orchestrator_also_ended_by_proxy": sum(ended[s] for s in ended_here),
            "stream_ended_for_unknown_id": len(orchestrator.ended_unknown),
            "unbalanced_streams": unbalanced,
            "attempts": dict(orchestrator.requests),
        },
        "sessions": {
            "opened": opened,
            "stopped_by_proxy": stopped_by_proxy,
            "ended_by_engine": ended_by_engine,
            "still_open": still_open,
            "match": sessions_ok,
            "opened_without_stream": len(all_sessions - with_stream),
        },
        "players": {
            "joined": players.joined,
            "segments": players.log.segments,
            "segment_bytes": players.log.segment_bytes,
            "left_mid_segment": players.log.abandoned,
            "answers": statuses,
            "http_5xx_500": server_errors,
            "client_errors": dict(players.log.failures),
        },
        "faults": dict(injector.done),
        "fault_timeline": injector.timeline,
        "proxy": proxy,
        "samples": samples,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=30.0, help="load phase length")
    parser.add_argument("--channels", type=int, default=40, help="distinct content ids")
    parser.add_argument("--players", type=int, default=40, help="players at once, at most")
    parser.add_argument("--engines", type=int, default=3, help="simulated engines")
    parser.add_argument("--fault-every", type=float, default=20.0, help="mean s between faults")
    parser.add_argument("--sample", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--output", type=Path, default=RESULTS / "soak.json")
    args = parser.parse_args(argv)
    if not 0 < args.minutes <= 24 * 60:
        parser.error("--minutes must be between 0 and 1440")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("httpx", "hypercorn.error"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    report = trio.run(run, args)
    output: Path = args.output
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=1) + "\n")
    plot(report, output.with_suffix(".png"))
    summary = {k: report[k] for k in ("ok", "rss_kib", "fds", "events", "sessions")}
    summary["events"] = {k: v for k, v in summary["events"].items() if k != "attempts"}
    print(json.dumps(summary, indent=1))
    print(f"wrote {output} and {output.with_suffix('.png')}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
