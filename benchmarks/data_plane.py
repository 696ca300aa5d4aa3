"""data_plane: segment serving at 50 connections, side by side with two references.

The same segment bytes are served by
- the proxy (a segment in a live channel's window, through ``ProxyApp``'s lean ASGI path),
- a bare ASGI app on Hypercorn with the proxy's Hypercorn settings (the framework's floor),
- nginx serving the bytes as a file (the machine's limit; one worker, when nginx is installed).

The load generator is wrk (``-t2 -c50``) when installed, else a Trio load generator; both run in
their own process. Runs are interleaved (the order rotates every round) and each ratio is
taken within one round, so drift in the machine's speed hits both sides of a ratio alike.
Reported: segments/s of each server, the proxy's ÷ the bare ASGI app's (target ≥ 3) and ÷
nginx's, medians over rounds with their min and max.

    python -m benchmarks.data_plane            # 3 rounds × 10 s per server, ~1.7 min
    python -m benchmarks.data_plane --quick    # 1 round × 3 s
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from trioproxy.testing.players import parse_playlist, random_content_id

from .loadgen import Connection, split_url
from .report import Target, base_parser, begin, pyplot, write_result
from .servers import start_child
from .stats import percentile, ratio

NAME = "data_plane"
CONNECTIONS = 50
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}

NGINX_CONF = """\
{user}worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 75;
    keepalive_requests 1000;
    client_body_temp_path {prefix}/tmp;
    types {{ video/mp2t ts; }}
    server {{
        listen 127.0.0.1:{port};
        root {prefix}/www;
        location / {{
            add_header Cache-Control "public, max-age=3600, immutable";
            add_header Access-Control-Allow-Origin "*";
        }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _write_site(prefix: Path, body: bytes, port: int) -> Path:
    (prefix / "www").mkdir()
    (prefix / "tmp").mkdir()
    (prefix / "www" / "seg.ts").write_bytes(body)
    user = "user root;\n" if hasattr(os, "geteuid") and os.geteuid() == 0 else ""
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(user=user, prefix=prefix, port=port))
    return conf


@asynccontextmanager
async def nginx(body: bytes) -> AsyncIterator[str | None]:
    """nginx serving ``body`` at ``/seg.ts``: its URL, or None when nginx is not installed."""
    binary = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if binary is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="bench-nginx-") as folder:
        port = free_port()
        conf = _write_site(Path(folder), body, port)
        process = await trio.lowlevel.open_process(
            [binary, "-p", folder, "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}/seg.ts"
            host, port, path = split_url(url)
            with trio.fail_after(10):
                while True:
                    try:
                        connection = Connection(host, port)
                        response = await connection.request("GET", path)
                        await connection.aclose()
                        if response.status == 200 and response.body == body:
                            break
                    except OSError:
                        pass
                    await trio.sleep(0.05)
            yield url
        finally:
            with trio.CancelScope(shield=True):
                process.terminate()
                with trio.move_on_after(5):
                    await process.wait()
                if process.poll() is None:
                    process.kill()
                    await process.wait()


def parse_wrk(output: str) -> dict[str, float]:
    """Requests/s, latency percentiles (ms) and errors from ``wrk --latency`` output."""
    result: dict[str, float] = {"errors": 0.0}
    for line in output.splitlines():
        text = line.strip()
        if match := re.fullmatch(r"(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)", text):
            result[f"p{match[1]}_ms"] = float(match[2]) * UNITS[match[3]]
        elif text.startswith("Requests/sec:"):
            result["requests_per_second"] = float(text.split()[1])
        elif text.startswith("Non-2xx or 3xx responses:"):
            result["errors"] += float(text.split()[-1])
        elif text.startswith("Socket errors:"):
            result["errors"] += sum(float(n) for n in re.findall(r"\d+", text))
        elif match := re.match(r"(\d+) requests in", text):
            result["requests"] = float(match[1])
    return result


async def load(url: str, seconds: float, use_wrk: bool) -> dict[str, float]:
    if use_wrk:
        command = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "--latency", url]
        done = await trio.run_process(command, capture_stdout=True, capture_stderr=True)
        return parse_wrk(done.stdout.decode())
    # Fallback: the Trio load generator, in a child process so it does not share our loop.
    code = (
        "import json,sys,trio\n"
        "from benchmarks.loadgen import hammer\n"
        "r=trio.run(hammer,sys.argv[1],int(sys.argv[2]),float(sys.argv[3]))\n"
        "print(json.dumps(r.summary()))\n"
    )
    command = [sys.executable, "-c", code, url, str(CONNECTIONS), str(seconds)]
    done = await trio.run_process(command, capture_stdout=True)
    summary = __import__("json").loads(done.stdout)
    latency = summary["latency_ms"]
    return {
        "requests_per_second": summary["requests_per_second"],
        "requests": summary["requests"],
        "p50_ms": latency["median"],
        "p99_ms": latency["p99"],
        "errors": summary["errors"],
    }


async def first_segment(base: str) -> tuple[str, bytes]:
    """Open a channel on the proxy; the URL and bytes of the newest segment it lists."""
    host, port, _ = split_url(base)
    connection = Connection(host, port)
    try:
        response = await connection.request("GET", f"/ace/getstream?id={random_content_id()}")
        playlist = await connection.request("GET", response.headers["location"])
        _, uris = parse_playlist(playlist.body.decode())
        segment = await connection.request("GET", uris[-1])
        assert segment.status == 200, segment.status
        return base + uris[-1], segment.body
    finally:
        await connection.aclose()


def _write_temp(body: bytes) -> str:
    with tempfile.NamedTemporaryFile(prefix="bench-seg-", suffix=".ts", delete=False) as f:
        f.write(body)
        return f.name


async def run(runs: int, seconds: float, use_wrk: bool) -> dict[str, Any]:
    rounds: list[dict[str, dict[str, float]]] = []
    async with start_child("fixtures", {"engine_ports": 1, "backlog": 6.0}) as fixtures:
        config = {
            "engines": fixtures.ready["engines"],
            "proxy_grace_period": 3600.0,
            "hls_client_idle_timeout": 3600.0,
            "hls_max_segments": 500,
            "log_level": "WARNING",
        }
        async with start_child("proxy", {"config": config}) as proxy:
            url, body = await first_segment(proxy.ready["proxy"])
            path = _write_temp(body)
            try:
                async with start_child("bare", {"file": path}) as bare, nginx(body) as nginx_url:
                    targets = {"proxy": url, "bare Hypercorn": bare.ready["bare"] + "/seg.ts"}
                    if nginx_url is not None:
                        targets["nginx"] = nginx_url
                    names = list(targets)
                    for name in names:  # warm-up: connections, caches, the JIT-less interpreter
                        await load(targets[name], 1.0, use_wrk)
                    for index in range(runs):
                        order = names[index % len(names) :] + names[: index % len(names)]
                        print(
                            f"{NAME}: round {index + 1}/{runs}: {', '.join(order)}", file=sys.stderr
                        )
                        this: dict[str, dict[str, float]] = {}
                        for name in order:
                            this[name] = await load(targets[name], seconds, use_wrk)
                        rounds.append(this)
            finally:
                os.unlink(path)
    return {"rounds": rounds, "segment_bytes": len(body), "targets": names}


def plot(summary: dict[str, dict[str, float]], path: Path) -> None:
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.2), dpi=90)
    names = list(summary)
    rates = [summary[n]["requests_per_second"] for n in names]
    left.bar(names, rates, color=["tab:blue", "tab:gray", "tab:green"][: len(names)])
    left.set_yscale("log")
    left.set_ylabel("requests/s (log)")
    for i, rate in enumerate(rates):
        left.text(i, rate, f"{rate:,.0f}", ha="center", va="bottom", fontsize=8)
    width = 0.38
    xs = range(len(names))
    right.bar(
        [x - width / 2 for x in xs], [summary[n]["p50_ms"] for n in names], width, label="p50"
    )
    right.bar(
        [x + width / 2 for x in xs], [summary[n]["p99_ms"] for n in names], width, label="p99"
    )
    right.set_xticks(list(xs), names)
    right.set_ylabel("latency (ms)")
    right.legend(fontsize=7)
    fig.suptitle(f"data_plane: one ~60 KB segment, {CONNECTIONS} connections", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(NAME, __doc__ or "")
    parser.add_argument(
        "--loadgen",
        choices=("auto", "wrk", "trio"),
        default="auto",
        help="wrk when installed (auto), or the Trio load generator",
    )
    args = parser.parse_args(argv)
    use_wrk = args.loadgen == "wrk" or (args.loadgen == "auto" and shutil.which("wrk") is not None)
    runs = args.runs or (1 if args.quick else 3)
    seconds = 3.0 if args.quick else 10.0
    started = begin()
    data = trio.run(run, runs, seconds, use_wrk)
    rounds = data["rounds"]
    names = data["targets"]
    summary: dict[str, dict[str, float]] = {}
    for name in names:
        rates = [r[name]["requests_per_second"] for r in rounds]
        summary[name] = {
            "requests_per_second": percentile(rates, 50),
            "min_requests_per_second": min(rates),
            "max_requests_per_second": max(rates),
            "p50_ms": percentile([r[name].get("p50_ms", float("nan")) for r in rounds], 50),
            "p99_ms": percentile([r[name].get("p99_ms", float("nan")) for r in rounds], 50),
            "max_p99_ms": max(r[name].get("p99_ms", float("nan")) for r in rounds),
            "errors": sum(r[name].get("errors", 0.0) for r in rounds),
        }
    ratios = {
        ref: [
            ratio(r["proxy"]["requests_per_second"], r[ref]["requests_per_second"]) for r in rounds
        ]
        for ref in names
        if ref != "proxy"
    }
    ratio_median = {ref: percentile(values, 50) for ref, values in ratios.items()}
    targets = [
        Target("proxy segments/s ÷ bare Hypercorn", ratio_median["bare Hypercorn"], ">=", 3.0)
    ]
    ratio_table = [
        (f"proxy ÷ {ref}", len(values), ratio_median[ref], min(values), max(values))
        for ref, values in ratios.items()
    ]
    columns = [
        "server",
        "rounds",
        "segments/s (median)",
        "min",
        "max",
        "p50 ms",
        "p99 ms",
        "worst p99 ms",
        "errors",
        "proxy ÷ this",
    ]
    table = [
        (
            name,
            len(rounds),
            s["requests_per_second"],
            s["min_requests_per_second"],
            s["max_requests_per_second"],
            s["p50_ms"],
            s["p99_ms"],
            s["max_p99_ms"],
            int(s["errors"]),
            1.0 if name == "proxy" else ratio_median[name],
        )
        for name, s in summary.items()
    ]
    md = write_result(
        NAME,
        out=args.out,
        quick=args.quick,
        started=started,
        setup={
            "connections": CONNECTIONS,
            "seconds_per_run": seconds,
            "rounds": runs,
            "segment_bytes": data["segment_bytes"],
            "load generator": "wrk -t2 (own process)" if use_wrk else "Trio (own process)",
            "nginx": "1 worker, sendfile" if "nginx" in names else "not installed",
        },
        tables=[
            ("Throughput and latency", columns, table),
            (
                "Ratios, each taken within one round",
                ["ratio", "rounds", "median", "min", "max"],
                ratio_table,
            ),
        ],
        targets=targets,
        data={"summary": summary, "ratios": ratios, "rounds": rounds},
        plot=lambda path: plot(summary, path),
        notes=[
            "Ratios are taken within each round and the median over rounds is reported.",
            "The load generator and the server share the machine's 2 cores.",
        ],
    )
    print(md.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
