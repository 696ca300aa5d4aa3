"""Servers under test, each in its own process, and the handle the benchmarks drive them with.

The proxy is single-threaded: on a 2-core machine a load generator in the same process would
take the proxy's CPU and its event loop. So every server runs in a child process
(``python -m benchmarks.servers KIND --spec JSON``): it prints one JSON line with its addresses
when it is ready, then answers one JSON line per command read from stdin (``engine``,
``orchestrator``, ``lag``, ``requests``, ``stamps <id>``, ``quit``). End of stdin stops it.

Kinds:
- ``fixtures``: the simulated engine (on several ports) and the fake orchestrator (with a delay);
- ``proxy``: :func:`trioproxy.service.serve` with a :class:`~trioproxy.config.Config`;
- ``bare``: a bare ASGI app on Hypercorn answering every GET with the bytes of one file.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio
from hypercorn.trio import serve as hypercorn_serve
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope

from trioproxy.config import Config
from trioproxy.http.asgi import send_response, serve_lifespan
from trioproxy.service import Running, hypercorn_config, serve
from trioproxy.testing.engine import SimulatedEngine, demo_media
from trioproxy.testing.orchestrator import FakeOrchestrator

from .stamps import StampingEngine
from .stats import spread

__all__ = ["Child", "start_child"]

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

Handler = Callable[[str], Awaitable[Any]]


# ---- parent side --------------------------------------------------------------------------------


class Child:
    """A running server process: its ready line, commands, CPU time and RSS."""

    def __init__(
        self, process: trio.Process, ready: dict[str, Any], pending: bytearray | None = None
    ) -> None:
        self.process = process
        self.ready = ready
        self._pending = pending if pending is not None else bytearray()

    @property
    def pid(self) -> int:
        return self.process.pid

    async def command(self, name: str) -> Any:
        assert self.process.stdin is not None
        await self.process.stdin.send_all(name.encode() + b"\n")
        return json.loads(await _read_line(self.process, self._pending))

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used so far."""
        with open(f"/proc/{self.pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def rss_bytes(self) -> int:
        with open(f"/proc/{self.pid}/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * PAGE_SIZE


async def _read_line(process: trio.Process, pending: bytearray) -> bytes:
    assert process.stdout is not None
    while (index := pending.find(b"\n")) < 0:
        data = await process.stdout.receive_some(65536)
        if not data:
            raise RuntimeError(f"server process {process.pid} exited (code {process.poll()})")
        pending += data
    line = bytes(pending[:index])
    del pending[: index + 1]
    return line


@asynccontextmanager
async def start_child(kind: str, spec: dict[str, Any]) -> AsyncIterator[Child]:
    """Run ``python -m benchmarks.servers KIND`` until the block ends; its log goes to a file."""
    log = tempfile.NamedTemporaryFile(prefix=f"bench-{kind}-", suffix=".log", delete=False)  # noqa: SIM115
    command = [sys.executable, "-m", "benchmarks.servers", kind, "--spec", json.dumps(spec)]
    env = {**os.environ, "PYTHONPATH": _pythonpath()}
    process = await trio.lowlevel.open_process(
        command, stdin=-1, stdout=-1, stderr=log.fileno(), env=env
    )
    log.close()
    child: Child | None = None
    try:
        pending = bytearray()
        with trio.fail_after(READY_TIMEOUT):
            ready = json.loads(await _read_line(process, pending))
        child = Child(process, ready, pending)
        yield child
    except BaseException:
        sys.stderr.write(_tail(log.name))
        raise
    finally:
        with trio.CancelScope(shield=True):
            if process.stdin is not None:
                await process.stdin.aclose()
            with trio.move_on_after(STOP_TIMEOUT):
                await process.wait()
            if process.poll() is None:
                process.kill()
                await process.wait()
        os.unlink(log.name)


def _tail(path: str, size: int = 4000) -> str:
    return Path(path).read_text(errors="replace")[-size:]


def _read_bytes(path: str) -> bytes:
    return Path(path).read_bytes()


def _pythonpath() -> str:
    root = str(Path(__file__).resolve().parent.parent)
    current = os.environ.get("PYTHONPATH")
    return root if not current else f"{root}{os.pathsep}{current}"


# ---- child side ---------------------------------------------------------------------------------


async def _command_loop(handler: Handler, stop: trio.Event) -> None:
    """Answer commands from stdin, one JSON line each, until ``quit`` or end of input."""
    stdin = trio.lowlevel.FdStream(os.dup(0))
    pending = bytearray()
    async with stdin:
        while True:
            while (index := pending.find(b"\n")) < 0:
                data = await stdin.receive_some(4096)
                if not data:
                    stop.set()
                    return
                pending += data
            name = pending[:index].decode().strip()
            del pending[: index + 1]
            if name == "quit":
                stop.set()
                return
            answer = await handler(name)
            _emit(answer)


def _emit(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def load_media(folder: str) -> list[bytes]:
    """The segments ``seg0.ts``, ``seg1.ts``, ... of ``folder``, in order."""
    paths = sorted(Path(folder).glob("seg*.ts"), key=lambda p: int(p.stem.removeprefix("seg")))
    return [path.read_bytes() for path in paths]


async def run_fixtures(spec: dict[str, Any]) -> None:
    engine = SimulatedEngine(
        load_media(spec["media"]) if spec.get("media") else demo_media(),
        durations=[float(spec.get("duration", 2.0))],
        list_size=int(spec.get("list_size", 6)),
        open_delay=float(spec.get("open_delay", 0.0)),
        prebuffer=float(spec.get("prebuffer", 0.0)),
        backlog=float(spec.get("backlog", 6.0)),
        segment_delay=float(spec.get("segment_delay", 0.0)),
        seamless=bool(spec.get("seamless", False)),
        formats=spec.get("formats", "hls"),
    )
    # ``stamps``: requests counted by kind, and when each PES header was sent (benchmarks.stamps)
    stamping = StampingEngine(engine) if spec.get("stamps") else None
    orchestrator = FakeOrchestrator(delay=float(spec.get("orchestrator_delay", 0.0)))
    engine_config = hypercorn_config("127.0.0.1:0")
    engine_config.bind = ["127.0.0.1:0"] * int(spec.get("engine_ports", 1))
    engine_config.keep_alive_max_requests = 1_000_000
    stop = trio.Event()

    async def handler(name: str) -> Any:
        if name == "engine":
            per_session = [
                {
                    "key": session.key,
                    "stopped": session.stopped,
                    "fetches": sum(session.segment_requests.values()),
                    "segments": len(session.segment_requests),
                }
                for session in engine.sessions.values()
            ]
            return {"sessions": per_session, "stops": len(engine.stops)}
        if name == "requests" and stamping is not None:
            return dict(stamping.requests)
        if name.startswith("stamps ") and stamping is not None:
            return stamping.take(name.removeprefix("stamps "))
        if name == "orchestrator":
            events = Counter(orchestrator.kinds())
            return {"events": dict(events), "in_flight": orchestrator.in_flight}
        return {"error": f"unknown command {name!r}"}

    async with trio.open_nursery() as nursery:
        engines = await nursery.start(
            lambda task_status: hypercorn_serve(
                stamping or engine,
                engine_config,
                shutdown_trigger=stop.wait,
                task_status=task_status,
            )
        )
        orchestrators = await nursery.start(
            lambda task_status: hypercorn_serve(
                orchestrator,
                hypercorn_config("127.0.0.1:0"),
                shutdown_trigger=stop.wait,
                task_status=task_status,
            )
        )
        _emit({"engines": engines, "orchestrator": orchestrators[0]})
        await _command_loop(handler, stop)


async def _sample_lag(samples: list[float], interval: float = 0.01) -> None:
    """How late ``trio.sleep(interval)`` wakes up, again and again."""
    while True:
        began = trio.current_time()
        await trio.sleep(interval)
        samples.append(trio.current_time() - began - interval)


class GCPauses:
    """Durations of the garbage collector's runs (they stop the event loop)."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []
        self._began = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._began = now
        else:
            self.pauses.append((info["generation"], now - self._began))

    def take(self) -> dict[str, Any]:
        pauses, self.pauses = self.pauses, []
        durations = [d for _, d in pauses]
        return {
            "count": len(pauses),
            "full_collections": sum(1 for g, _ in pauses if g == 2),
            "total_ms": sum(durations) * 1000,
            "max_ms": max(durations, default=0.0) * 1000,
        }


async def run_proxy(spec: dict[str, Any]) -> None:
    settings = dict(spec.get("config", {}))
    if "engines" in settings:
        settings["engines"] = tuple(settings["engines"])
    # Every benchmark player comes from 127.0.0.1: no per-address cap unless a spec sets one.
    no_address_caps = {
        "max_players_per_address": 0,
        "max_channels_per_address": 0,
        "max_opening_per_address": 0,
        "max_connections_per_address": 0,
    }
    config = Config(**{**no_address_caps, **settings, "bind": "127.0.0.1:0"})
    stop = trio.Event()
    sampler = trio.CancelScope()
    lag: list[float] = []
    collections = GCPauses()

    async def handler(name: str) -> Any:
        if name == "lag":
            summary = spread(lag, 1000)
            lag.clear()
            return {"lag_ms": summary, "gc": collections.take()}
        return {"error": f"unknown command {name!r}"}

    async def sample() -> None:
        with sampler:
            await _sample_lag(lag)

    async def proxy(task_status: trio.TaskStatus[Running]) -> None:
        await serve(config, shutdown_trigger=stop.wait, task_status=task_status)
        sampler.cancel()  # serve() returns once every channel is gone

    if spec.get("gc_freeze", True):  # as ``trioproxy serve`` does
        gc.collect()
        gc.freeze()
    async with trio.open_nursery() as nursery:
        if spec.get("lag"):
            nursery.start_soon(sample)
        running = await nursery.start(proxy)
        _emit({"proxy": running.url})
        await _command_loop(handler, stop)


async def run_bare(spec: dict[str, Any]) -> None:
    body = _read_bytes(spec["file"])
    headers = [
        (b"content-type", b"video/mp2t"),
        (b"cache-control", b"public, max-age=3600, immutable"),
        (b"access-control-allow-origin", b"*"),
        (b"access-control-expose-headers", b"Content-Length"),
    ]

    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        if scope["type"] == "http":
            await send_response(send, 200, headers, body, head=scope["method"] == "HEAD")

    stop = trio.Event()

    async def handler(name: str) -> Any:
        return {"error": f"unknown command {name!r}"}

    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            lambda task_status: hypercorn_serve(
                app,
                hypercorn_config("127.0.0.1:0"),
                shutdown_trigger=stop.wait,
                task_status=task_status,
            )
        )
        _emit({"bare": binds[0]})
        await _command_loop(handler, stop)


KINDS: dict[str, Callable[[dict[str, Any]], Awaitable[None]]] = {
    "fixtures": run_fixtures,
    "proxy": run_proxy,
    "bare": run_bare,
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.servers")
    parser.add_argument("kind", choices=sorted(KINDS))
    parser.add_argument("--spec", default="{}", help="JSON settings for that kind")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    trio.run(KINDS[args.kind], json.loads(args.spec))


if __name__ == "__main__":
    main()
