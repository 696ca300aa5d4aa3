"""hostile: what hostile upstreams and hostile clients cost the proxy, on any source tree.

Each case starts a fresh ``python -m trioproxy serve`` (from this tree, or from ``--tree DIR``)
with two well-behaved sources and one hostile one, all served by one origin process (this
tree's :class:`trioproxy.testing.hostile.HostileOrigin`, plus a VOD playlist of 1 MiB segments).
While a player asks for the hostile source, a probe asks ``/healthz`` every 50 ms on a
keep-alive connection (its latency is the event loop's lag as a client sees it) and a player
keeps watching a good channel. Recorded per case: the proxy's RSS at start, its peak (VmHWM)
and after the hostile channel has closed (with VOD: also once it is loaded), the probe's worst
and p99, what the hostile player got, whether the good channel kept playing, tracebacks in the
proxy's log and how long the proxy takes to exit after SIGTERM.

The flood cases run the proxy at an open-file limit of 1,024 (soft and hard) under 1,500
clients that send a request head one byte a second and reconnect when closed (from 1 or 30
addresses), and time how long a new player waits for a playlist and a segment, and ``/healthz``
on a new connection.

    python -m benchmarks.hostile [--quick] [--tree DIR] [--only case,...] [--out DIR]

``--tree DIR`` runs only the proxy from DIR (``PYTHONPATH=DIR``, ``cwd=DIR``), e.g. an older
commit exported with ``git archive <rev> | tar -x -C DIR``; settings that tree does not know are
environment variables it ignores. Loop lag while a huge playlist is parsed, in process, is
``benchmarks.loop_lag``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from trioproxy.testing.players import parse_playlist

from .loadgen import Connection, Response, split_url
from .report import RESULTS, begin, write_result
from .stats import spread

NAME = "hostile"
ROOT = Path(__file__).resolve().parent.parent
MIB = 1 << 20
PROBE_INTERVAL = 0.05
PROBE_TIMEOUT = 2.0
RSS_CEILING = 4 << 30  # a proxy past this is killed: the case reports it, the machine survives
VOD_SEGMENTS = 1000
FLOOD_CLIENTS = 1500
FLOOD_FD_LIMIT = 1024
SLOW_HEAD = b"GET /healthz HTTP/1.1\r\nHost: x\r\nUser-Agent: slow\r\n\r\n"


@dataclass(frozen=True)
class Case:
    name: str
    title: str
    path: str  # the hostile source's playlist on the origin
    kind: str = "source"  # "source", "vod" or "flood"
    env: dict[str, str] = field(default_factory=dict)
    addresses: int = 1
    quick: bool = True  # part of a --quick run


CASES = [
    Case("endless_playlist", "endless playlist", "/endless.m3u8"),
    Case("huge_playlist", "huge playlist (1,000,000 segments)", "/huge.m3u8"),
    Case("gzip_bomb", "gzip-bomb playlist (256 MiB decoded)", "/bomb.m3u8"),
    Case("endless_segment", "endless segment", "/endless-segment.m3u8"),
    Case("oversized_segment", "oversized segment (512 MiB declared)", "/oversized.m3u8"),
    Case("vod", "VOD, 1,000 × 1 MiB", "/vod.m3u8", kind="vod"),
    Case(
        "vod_budget",
        "VOD, 1,000 × 1 MiB, TRIOPROXY_MEMORY_BUDGET=1100M",
        "/vod.m3u8",
        kind="vod",
        env={"TRIOPROXY_MEMORY_BUDGET": "1100M"},
        quick=False,
    ),
    Case("flood", "slow-header flood, 1 address", "/good.m3u8", kind="flood"),
    Case("flood30", "slow-header flood, 30 addresses", "/good.m3u8", kind="flood", addresses=30),
]


@dataclass(frozen=True)
class Timing:
    player_timeout: float  # the hostile player gives up after this
    settle: float  # after the player's answer, until "after" is read
    vod_timeout: float
    flood_warmup: float
    flood_wait_cap: float
    exit_cap: float


FULL = Timing(45.0, 12.0, 90.0, 5.0, 60.0, 30.0)
QUICK = Timing(10.0, 6.0, 40.0, 3.0, 20.0, 15.0)


# ---- pure functions ----------------------------------------------------------------------------


def parse_proc_status(text: str) -> dict[str, int]:
    """The ``Vm*`` fields of ``/proc/<pid>/status`` in bytes (``VmRSS:  1024 kB`` → 1048576)."""
    fields: dict[str, int] = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        parts = value.split()
        if name.startswith("Vm") and len(parts) == 2 and parts[1] == "kB":
            fields[name] = int(parts[0]) * 1024
    return fields


def first_words(body: bytes, count: int = 8, width: int = 80) -> str:
    """The first ``count`` words of a response body, on one line, at most ``width`` characters."""
    text = " ".join(body[:4096].decode("utf-8", errors="replace").split()[:count])
    return text if len(text) <= width else text[: width - 1] + "…"


def summarise_probe(latencies: Sequence[float], failures: int) -> dict[str, Any]:
    """The probe's latencies (seconds) as ms: median, p99, worst, count, and its failures."""
    return {**spread(latencies, 1000), "failures": failures}


_TRACEBACK = re.compile(r"^(  \+ )?(Exception Group )?Traceback \(most recent call last\)")
_EXCEPTION = re.compile(r"^[\s|]*([A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b.*)$")
_RECORD = re.compile(r"^\d{4}-\d\d-\d\d ")


def count_tracebacks(text: str) -> int:
    """Tracebacks a log holds, an exception group's nested ones not counted again."""
    return sum(1 for line in text.splitlines() if _TRACEBACK.match(line))


def log_errors(text: str, keep: int = 5) -> list[str]:
    """The first ``keep`` ERROR lines of a log, each with the innermost exception it printed."""
    found: list[str] = []
    for line in text.splitlines():
        if _RECORD.match(line):
            if len(found) >= keep:
                break
            if " ERROR " in line or " CRITICAL " in line:
                found.append(line[:200])
        elif found and (exception := _EXCEPTION.match(line)):
            found[-1] = found[-1].split(" ← ")[0] + " ← " + exception.group(1)[:120]
    return found


def kept_playing(rounds: Sequence[tuple[bool, float]], worst_allowed: float = 4.0) -> bool | None:
    """A good player's rounds ``(ok, seconds)``: every one answered, none slower than allowed."""
    if not rounds:
        return None
    return all(ok and took <= worst_allowed for ok, took in rounds)


def select_cases(only: str, quick: bool) -> list[Case]:
    names = [n.strip() for n in only.split(",") if n.strip()]
    known = {case.name: case for case in CASES}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown case(s): {', '.join(unknown)}; known: {', '.join(known)}")
    if names:
        return [known[n] for n in names]
    return [case for case in CASES if case.quick or not quick]


# ---- the origin (a child process) --------------------------------------------------------------


def _vod_playlist(segments: int) -> bytes:
    rows = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:2", "#EXT-X-PLAYLIST-TYPE:VOD"]
    rows.append("#EXT-X-MEDIA-SEQUENCE:0")
    for n in range(segments):
        rows += ["#EXTINF:2.000,", f"/vod/{n}.ts"]
    rows.append("#EXT-X-ENDLIST")
    return ("\n".join(rows) + "\n").encode()


async def serve_origin(spec: dict[str, Any]) -> None:
    from hypercorn.trio import serve as hypercorn_serve

    from trioproxy.http.asgi import send_response
    from trioproxy.service import hypercorn_config
    from trioproxy.testing.hostile import HostileOrigin

    hostile = HostileOrigin(
        huge_segments=int(spec["huge_segments"]), oversized_bytes=int(spec["oversized_bytes"])
    )
    playlist = _vod_playlist(int(spec["vod_segments"]))
    segment = b"\x47" * MIB
    kind = [(b"content-type", b"application/vnd.apple.mpegurl")]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path == "/vod.m3u8":
            await send_response(send, 200, kind, playlist)
        elif scope["type"] == "http" and path.startswith("/vod/"):
            await send_response(send, 200, [(b"content-type", b"video/mp2t")], segment)
        else:
            await hostile(scope, receive, send)

    config = hypercorn_config("127.0.0.1:0")
    config.keep_alive_max_requests = 1_000_000
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            lambda task_status: hypercorn_serve(app, config, task_status=task_status)
        )
        print(json.dumps({"origin": binds[0]}), flush=True)
        stdin = trio.lowlevel.FdStream(os.dup(0))
        async with stdin:
            while await stdin.receive_some(4096):  # until the parent closes our stdin
                pass
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def origin_process(spec: dict[str, Any]) -> AsyncIterator[str]:
    command = [sys.executable, "-m", "benchmarks.hostile", "--serve-origin", json.dumps(spec)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = await trio.lowlevel.open_process(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=str(ROOT), env=env
    )
    try:
        assert process.stdout is not None
        line = b""
        with trio.fail_after(30):
            while not line.endswith(b"\n"):
                chunk = await process.stdout.receive_some(4096)
                if not chunk:
                    raise RuntimeError("the origin exited before it was ready")
                line += chunk
        yield json.loads(line)["origin"]
    finally:
        with trio.CancelScope(shield=True):
            if process.stdin is not None:
                await process.stdin.aclose()
            with trio.move_on_after(10):
                await process.wait()
            if process.poll() is None:
                process.kill()
                await process.wait()


# ---- the proxy (a child process, from any tree) ------------------------------------------------


@dataclass
class Proxy:
    process: trio.Process
    base: str
    log: Path
    killed_at_ceiling: bool = False

    def status(self) -> dict[str, int]:
        try:
            return parse_proc_status(Path(f"/proc/{self.process.pid}/status").read_text())
        except OSError:
            return {}

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def proxy_env(tree: Path, sources: dict[str, str], extra: dict[str, str]) -> dict[str, str]:
    dropped = ("TRIOPROXY_", "ACEXY_", "HLS_", "PROXY_", "ORCHESTRATOR", "API_KEY", "STREAM_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    env.update(
        PYTHONPATH=str(tree),
        PYTHONDONTWRITEBYTECODE="1",
        TRIOPROXY_BIND="127.0.0.1:0",
        TRIOPROXY_ENGINES="http://127.0.0.1:9",
        TRIOPROXY_LOG_LEVEL="INFO",
        TRIOPROXY_SOURCES=",".join(f"{name}={url}" for name, url in sources.items()),
        PROXY_GRACE_PERIOD="1",
        HLS_CLIENT_IDLE_TIMEOUT="2",
    )
    env.update(extra)
    return env


def _text(path: Path) -> str:
    return path.read_text(errors="replace")


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


def _keep_log(folder: Path, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.log").write_text(text)


def _limit_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FLOOD_FD_LIMIT, FLOOD_FD_LIMIT))


@asynccontextmanager
async def proxy_process(
    tree: Path, env: dict[str, str], *, fd_limit: bool, exit_cap: float
) -> AsyncIterator[Proxy]:
    log = tempfile.NamedTemporaryFile(prefix="bench-hostile-", suffix=".log", delete=False)  # noqa: SIM115
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "trioproxy", "serve"],
        cwd=str(tree),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log.fileno(),
        stderr=log.fileno(),
        preexec_fn=_limit_files if fd_limit else None,
    )
    log.close()
    path = Path(log.name)
    try:
        with trio.fail_after(30):
            while (
                found := re.search(r"Running on (http://127\.0\.0\.1:\d+)", _text(path))
            ) is None:
                if process.poll() is not None:
                    raise RuntimeError(f"the proxy exited:\n{_text(path)[-2000:]}")
                await trio.sleep(0.05)
        yield Proxy(process, found.group(1), path)
    finally:
        with trio.CancelScope(shield=True):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                with trio.move_on_after(exit_cap):
                    await process.wait()
            if process.poll() is None:
                process.kill()
                await process.wait()
            _remove(path)


# ---- clients -----------------------------------------------------------------------------------


async def get_following(connection: Connection, path: str, hops: int = 3) -> tuple[Response, str]:
    """GET ``path``, following redirects to the same server; the answer and its path."""
    for _ in range(hops):
        response = await connection.request("GET", path)
        if response.status not in (301, 302, 303, 307) or "location" not in response.headers:
            return response, path
        location = response.headers["location"]
        path = split_url(location)[2] if location.startswith("http") else location
    return response, path


async def play_once(base: str, source: str) -> tuple[bool, str]:
    """One new player: the source's playlist, then its newest segment. (ok, what it got)."""
    host, port, _ = split_url(base)
    connection = Connection(host, port)
    try:
        playlist, where = await get_following(connection, f"/sources/{source}.m3u8")
        if playlist.status != 200:
            return False, f"{playlist.status} {first_words(playlist.body)}"
        _, uris = parse_playlist(playlist.body.decode(errors="replace"))
        if not uris:
            return False, "200 with no segment"
        uri = uris[-1]
        if uri.startswith("http"):
            uri = split_url(uri)[2]
        elif not uri.startswith("/"):
            uri = where.rsplit("/", 1)[0] + "/" + uri
        segment = await connection.request("GET", uri)
        return segment.status == 200, f"{segment.status}"
    finally:
        await connection.aclose()


async def good_player(base: str, rounds: list[tuple[bool, float]], ready: trio.Event) -> None:
    """Watch the good channel: a new playlist and segment every second; each round timed."""
    while True:
        began = time.monotonic()
        ok = False
        with trio.move_on_after(10):
            try:
                ok, _ = await play_once(base, "good")
            except (OSError, EOFError, trio.BrokenResourceError, ValueError):
                ok = False
        took = time.monotonic() - began
        if ready.is_set():
            rounds.append((ok, took))
        elif ok:
            ready.set()
        await trio.sleep(max(0.0, 1.0 - took))


async def probe(base: str, latencies: list[float], failures: list[int]) -> None:
    """``/healthz`` every 50 ms on one keep-alive connection; a failure reconnects."""
    host, port, _ = split_url(base)
    connection = Connection(host, port)
    try:
        while True:
            began = time.monotonic()
            answered = False
            with trio.move_on_after(PROBE_TIMEOUT):
                try:
                    answered = (await connection.request("GET", "/healthz")).status == 200
                except (OSError, EOFError, trio.BrokenResourceError):
                    answered = False
            took = time.monotonic() - began
            latencies.append(took)
            if not answered:
                failures[0] += 1
                await connection.aclose()
            await trio.sleep(max(0.0, PROBE_INTERVAL - took))
    finally:
        with trio.CancelScope(shield=True):
            await connection.aclose()


async def watch_rss(proxy: Proxy, seen: list[int]) -> None:
    while proxy.process.poll() is None:
        rss = proxy.status().get("VmRSS", 0)
        seen.append(rss)
        if rss > RSS_CEILING:
            proxy.killed_at_ceiling = True
            proxy.process.kill()
            return
        await trio.sleep(0.2)


async def hostile_player(base: str, give_up: float) -> dict[str, Any]:
    host, port, _ = split_url(base)
    connection = Connection(host, port)
    began = time.monotonic()
    got = f"no answer in {give_up:g} s"
    status: int | None = None
    try:
        with trio.move_on_after(give_up):
            response, _ = await get_following(connection, "/sources/hostile.m3u8")
            status, got = response.status, first_words(response.body)
    except (OSError, EOFError, trio.BrokenResourceError) as exc:
        got = f"connection failed: {type(exc).__name__}"
    finally:
        with trio.CancelScope(shield=True):
            await connection.aclose()
    return {"status": status, "got": got, "after_s": time.monotonic() - began}


async def proxy_status(base: str) -> dict[str, Any]:
    host, port, _ = split_url(base)
    connection = Connection(host, port)
    try:
        with trio.fail_after(5):
            return dict(json.loads((await connection.request("GET", "/proxy/status")).body))
    except (OSError, EOFError, ValueError, trio.TooSlowError, trio.BrokenResourceError):
        return {}
    finally:
        await connection.aclose()


def _hostile_channels(status: dict[str, Any]) -> list[dict[str, Any]]:
    listed = list(status.get("channels", [])) + list(status.get("closing", []))
    return [c for c in listed if "hostile" in json.dumps(c)]


async def vod_player(proxy: Proxy, give_up: float) -> dict[str, Any]:
    """Reload the VOD playlist every second until the proxy has read all of it (or refused)."""
    began = time.monotonic()
    first: dict[str, Any] | None = None
    loaded: dict[str, Any] = {}
    channels: list[dict[str, Any]] = []
    with trio.move_on_after(give_up):
        while True:
            answer = await hostile_player(proxy.base, 10)
            first = first or answer
            channels = _hostile_channels(await proxy_status(proxy.base))
            ended = any(c.get("upstream", {}).get("ended") for c in channels)
            if answer["status"] != 200 or ended or not channels:
                break
            await trio.sleep(1.0)
    if channels:
        loaded = {
            "buffer": channels[0].get("buffer"),
            "memory": (await proxy_status(proxy.base)).get("limits", {}).get("memory"),
        }
    assert first is not None
    return {
        **first,
        "loaded_after_s": time.monotonic() - began,
        "rss_loaded": proxy.status().get("VmRSS"),
        "loaded": loaded,
    }


async def slow_client(port: int, source: str, counts: dict[str, int]) -> None:
    """Open, send a request head a byte a second, never finish it; reopen when closed."""
    while True:
        sock = trio.socket.socket()
        try:
            await sock.bind((source, 0))
            with trio.move_on_after(5):
                await sock.connect(("127.0.0.1", port))
                counts["opened"] += 1
            for i in range(len(SLOW_HEAD) - 2):
                await sock.send(SLOW_HEAD[i : i + 1])
                with trio.move_on_after(1.0):
                    if await sock.recv(4096) == b"":
                        counts["closed_by_proxy"] += 1
                        break
        except OSError:
            counts["errors"] += 1
        finally:
            sock.close()
        await trio.sleep(0.05)


async def new_player_wait(base: str, cap: float) -> dict[str, Any]:
    """How long a new player takes to get the fresh source's playlist and a segment."""
    began = time.monotonic()
    attempts = 0
    last = "no attempt"
    with trio.move_on_after(cap):
        while True:
            attempts += 1
            last = "no answer in 5 s"
            with trio.move_on_after(5):
                try:
                    ok, last = await play_once(base, "fresh")
                    if ok:
                        return {
                            "wait_s": time.monotonic() - began,
                            "attempts": attempts,
                            "ok": True,
                        }
                except (OSError, EOFError, trio.BrokenResourceError) as exc:
                    last = type(exc).__name__
            await trio.sleep(0.2)
    return {"wait_s": time.monotonic() - began, "attempts": attempts, "ok": False, "last": last}


async def fresh_healthz(base: str) -> float | None:
    host, port, _ = split_url(base)
    connection = Connection(host, port)
    began = time.monotonic()
    try:
        with trio.move_on_after(10):
            if (await connection.request("GET", "/healthz")).status == 200:
                return time.monotonic() - began
    except (OSError, EOFError, trio.BrokenResourceError):
        pass
    finally:
        with trio.CancelScope(shield=True):
            await connection.aclose()
    return None


# ---- one case ----------------------------------------------------------------------------------


async def run_case(
    case: Case, origin: str, tree: Path, timing: Timing, logs: Path | None
) -> dict[str, Any]:
    sources = {
        "good": f"{origin}/good.m3u8",
        "fresh": f"{origin}/good.m3u8",
        "hostile": f"{origin}{case.path}",
    }
    env = proxy_env(tree, sources, case.env)
    flood = case.kind == "flood"
    result: dict[str, Any] = {"case": case.name, "title": case.title}
    async with proxy_process(tree, env, fd_limit=flood, exit_cap=timing.exit_cap) as proxy:
        async with trio.open_nursery() as nursery:
            ready = trio.Event()
            rounds: list[tuple[bool, float]] = []
            nursery.start_soon(good_player, proxy.base, rounds, ready)
            with trio.move_on_after(20):
                await ready.wait()
            result["good_ready"] = ready.is_set()
            await trio.sleep(0.5)
            result["rss_start"] = proxy.status().get("VmRSS")
            latencies: list[float] = []
            failures = [0]
            rss_seen: list[int] = []
            nursery.start_soon(probe, proxy.base, latencies, failures)
            nursery.start_soon(watch_rss, proxy, rss_seen)
            began = time.monotonic()
            if case.kind == "source":
                result["player"] = await hostile_player(proxy.base, timing.player_timeout)
            elif case.kind == "vod":
                result["player"] = await vod_player(proxy, timing.vod_timeout)
            else:
                result.update(await flood_case(case, proxy, timing, nursery, latencies, failures))
            if not flood:
                await settle(proxy, timing.settle)
            status = result.pop("status_at_sigterm", None) or proxy.status()
            result["rss_peak"] = max([status.get("VmHWM", 0), *rss_seen])
            result["rss_after"] = status.get("VmRSS")
            result["window_s"] = time.monotonic() - began
            result.setdefault("probe_ms", summarise_probe(latencies, failures[0]))
            result["good_rounds"] = {
                "n": len(rounds),
                "failed": sum(1 for ok, _ in rounds if not ok),
                "worst_s": max((t for _, t in rounds), default=None),
            }
            result["good_kept_playing"] = kept_playing(rounds)
            nursery.cancel_scope.cancel()  # the probe and the good player leave first
        if not flood:
            result["exit_after_sigterm_s"] = await terminate(proxy, timing.exit_cap)
        text = proxy.log_text()
    if logs is not None:
        _keep_log(logs, case.name, text)
    result["killed_at_rss_ceiling"] = proxy.killed_at_ceiling
    result["tracebacks"] = count_tracebacks(text)
    result["log_errors"] = log_errors(text)
    result["log_lines"] = text.count("\n")
    print(f"{NAME}: {summary_line(result)}", file=sys.stderr, flush=True)
    return result


async def settle(proxy: Proxy, seconds: float) -> None:
    """Wait ``seconds`` after the player left, at least until the hostile channel is gone."""
    deadline = trio.current_time() + seconds
    with trio.move_on_after(seconds * 2):
        while True:
            gone = not _hostile_channels(await proxy_status(proxy.base))
            if gone and trio.current_time() >= deadline:
                return
            await trio.sleep(0.5)


async def terminate(proxy: Proxy, cap: float) -> float | None:
    """SIGTERM; seconds until the process exited (None: not within ``cap``)."""
    if proxy.process.poll() is not None:
        return None
    began = time.monotonic()
    proxy.process.send_signal(signal.SIGTERM)
    with trio.move_on_after(cap):
        await proxy.process.wait()
        return time.monotonic() - began
    return None


async def flood_case(
    case: Case,
    proxy: Proxy,
    timing: Timing,
    nursery: trio.Nursery,
    latencies: list[float],
    failures: list[int],
) -> dict[str, Any]:
    port = split_url(proxy.base)[1]
    counts = {"opened": 0, "closed_by_proxy": 0, "errors": 0}
    clients = trio.CancelScope()

    async def flood() -> None:
        with clients:
            async with trio.open_nursery() as inner:
                for i in range(FLOOD_CLIENTS):
                    n = i % case.addresses
                    inner.start_soon(slow_client, port, f"127.0.1.{1 + n}", counts)

    nursery.start_soon(flood)
    await trio.sleep(timing.flood_warmup)
    player = await new_player_wait(proxy.base, timing.flood_wait_cap)
    healthz = await fresh_healthz(proxy.base)
    probed = summarise_probe(latencies, failures[0])
    status = proxy.status()
    exit_s = await terminate(proxy, timing.exit_cap)  # the flood still on
    clients.cancel()
    got = "playlist and segment" if player["ok"] else f"none: {player.get('last')}"
    return {
        "player": {
            "status": 200 if player["ok"] else None,
            "got": got,
            "after_s": player["wait_s"],
        },
        "new_player": player,
        "fresh_healthz_s": healthz,
        "flood": {"clients": FLOOD_CLIENTS, "addresses": case.addresses, **counts},
        "fd_limit": FLOOD_FD_LIMIT,
        "exit_after_sigterm_s": exit_s,
        "probe_ms": probed,
        "status_at_sigterm": status,
    }


def summary_line(r: dict[str, Any]) -> str:
    player = r.get("player", {})
    mib = {k: (r.get(k) or 0) / MIB for k in ("rss_start", "rss_peak", "rss_after")}
    return (
        f"{r['case']}: player {player.get('status')} {player.get('got', '')!r} after "
        f"{player.get('after_s', 0):.1f} s; RSS {mib['rss_start']:.0f}/{mib['rss_peak']:.0f}/"
        f"{mib['rss_after']:.0f} MiB; probe p99 {r['probe_ms']['p99']:.0f} ms worst "
        f"{r['probe_ms']['max']:.0f} ms ({r['probe_ms']['failures']} failed); good channel "
        f"{r['good_kept_playing']}; exit {r.get('exit_after_sigterm_s')} s; "
        f"{r['tracebacks']} tracebacks"
    )


# ---- the run -----------------------------------------------------------------------------------


def _mib(value: int | None) -> float | None:
    return None if value is None else value / MIB


def _seconds(value: float | None, cap: float) -> str:
    return f"> {cap:g}" if value is None else f"{value:.1f}"


def tables(results: list[dict[str, Any]], timing: Timing) -> list[tuple[str, list[str], list[Any]]]:
    main_rows = []
    for r in results:
        player = r["player"]
        main_rows.append(
            (
                r["title"],
                f"{player['status'] or '–'} {player['got']}",
                player["after_s"],
                _mib(r.get("rss_start")),
                _mib(r.get("rss_peak")),
                _mib(player.get("rss_loaded")),
                _mib(r.get("rss_after")),
                r["probe_ms"]["p99"],
                r["probe_ms"]["max"],
                r["probe_ms"]["failures"],
                r["good_kept_playing"],
                r["tracebacks"],
                _seconds(r.get("exit_after_sigterm_s"), timing.exit_cap),
            )
        )
    columns = [
        "case",
        "hostile player got",
        "after s",
        "RSS start MiB",
        "peak MiB",
        "loaded MiB",
        "after MiB",
        "probe p99 ms",
        "probe worst ms",
        "probe failures",
        "good channel kept playing",
        "tracebacks",
        "exit after SIGTERM s",
    ]
    out: list[tuple[str, list[str], list[Any]]] = [("Per case", columns, main_rows)]
    flood_rows = [
        (
            r["title"],
            _seconds(
                r["new_player"]["wait_s"] if r["new_player"]["ok"] else None, timing.flood_wait_cap
            ),
            r["new_player"]["attempts"],
            _seconds(r["fresh_healthz_s"], 10),
            r["flood"]["opened"],
            r["flood"]["closed_by_proxy"],
            r["tracebacks"],
            _seconds(r["exit_after_sigterm_s"], timing.exit_cap),
        )
        for r in results
        if "new_player" in r
    ]
    if flood_rows:
        flood_columns = [
            "case",
            "new player waits s",
            "attempts",
            "/healthz on a new connection s",
            "connections opened",
            "closed by the proxy",
            "tracebacks",
            "exit after SIGTERM s",
        ]
        out.append(("Slow-header flood at an open-file limit of 1,024", flood_columns, flood_rows))
    return out


def describe_tree(tree: Path) -> str:
    try:
        rev = subprocess.run(
            ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev = ""
    if tree == ROOT:
        return f"this tree ({rev})" if rev else "this tree"
    return f"{tree.name} (an exported tree)"


async def run(
    cases: Sequence[Case], tree: Path, timing: Timing, logs: Path | None
) -> list[dict[str, Any]]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    spec = {
        "huge_segments": 1_000_000,
        "oversized_bytes": 512 * MIB,
        "vod_segments": VOD_SEGMENTS,
    }
    results = []
    async with origin_process(spec) as origin:
        for case in cases:
            print(f"{NAME}: {case.title}", file=sys.stderr, flush=True)
            results.append(await run_case(case, origin, tree, timing, logs))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"python -m benchmarks.{NAME}",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="short cases, vod_budget left out")
    parser.add_argument("--tree", type=Path, default=ROOT, help="run the proxy from this tree")
    parser.add_argument("--only", default="", help=f"cases: {', '.join(c.name for c in CASES)}")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the results")
    parser.add_argument("--logs", type=Path, help="keep each case's proxy log in this folder")
    parser.add_argument("--serve-origin", metavar="SPEC", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_origin:
        trio.run(serve_origin, json.loads(args.serve_origin))
        return 0
    try:
        cases = select_cases(args.only, args.quick)
    except ValueError as exc:
        parser.error(str(exc))
    tree = args.tree.resolve()
    if not (tree / "trioproxy" / "__main__.py").exists():
        parser.error(f"{args.tree} has no trioproxy package")
    timing = QUICK if args.quick else FULL
    started = begin()
    results = trio.run(run, cases, tree, timing, args.logs)
    md = write_result(
        NAME,
        out=args.out,
        quick=args.quick,
        started=started,
        setup={
            "proxy tree": describe_tree(tree),
            "cases": ",".join(c.name for c in cases),
            "timing": timing,
            "probe": f"/healthz every {PROBE_INTERVAL * 1000:g} ms, keep-alive, "
            f"{PROBE_TIMEOUT:g} s timeout",
            "channel close": "HLS_CLIENT_IDLE_TIMEOUT=2, PROXY_GRACE_PERIOD=1",
            "flood": f"{FLOOD_CLIENTS} slow-header clients, RLIMIT_NOFILE {FLOOD_FD_LIMIT}",
            "rss ceiling": f"{RSS_CEILING // MIB} MiB (killed past it)",
        },
        tables=tables(results, timing),
        targets=[],
        data={"cases": results},
        plot=None,
        notes=[
            "RSS from /proc/<pid>/status: start = VmRSS with the good channel playing, peak = "
            "VmHWM (or the highest VmRSS sampled every 0.2 s), after = VmRSS once the hostile "
            "channel is gone (at least the settle time after the player's answer).",
            "The probe's latency is the event loop's lag as a client sees it; a failure is no "
            f"answer within {PROBE_TIMEOUT:g} s. The good channel kept playing when every round "
            "(a new playlist + its newest segment, once a second) answered within 4 s.",
            "Flood cases: SIGTERM is sent with the flood still on.",
        ],
    )
    print(md.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
