"""startup: time to first playlist and first segment of a new channel, against the engine itself.

For each segment download delay (0 / 0.3 / 1 s, set on the simulated engine) and each trial, a
new content id is opened twice, in alternating order:
- through the proxy: ``/ace/getstream`` → redirect → playlist (the proxy answers it once
  ``HLS_INITIAL_SEGMENTS`` segments are in memory) → the first segment listed;
- on the engine directly, as a player talking to the engine would: open the session
  (``format=json``) → its playlist → the first segment listed → stop the session.
The engine opens sessions at once and has 3 segments on air already, so the figures are the
proxy's own cost plus the segment downloads it waits for.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

from trioproxy.testing.players import parse_playlist, random_content_id

from .loadgen import Connection, split_url
from .report import Target, base_parser, begin, pyplot, write_result
from .servers import start_child
from .stats import percentile, ratio, spread

NAME = "startup"
DELAYS = (0.0, 0.3, 1.0)
INITIAL_SEGMENTS = 2


async def through_proxy(base: str) -> tuple[float, float]:
    host, port, _ = split_url(base)
    connection = Connection(host, port)
    content_id = random_content_id()
    try:
        began = trio.current_time()
        redirect = await connection.request("GET", f"/ace/getstream?id={content_id}")
        playlist = await connection.request("GET", redirect.headers["location"])
        if playlist.status != 200:
            raise RuntimeError(f"proxy playlist answered {playlist.status}")
        at_playlist = trio.current_time() - began
        _, uris = parse_playlist(playlist.body.decode())
        segment = await connection.request("GET", uris[0])
        if segment.status != 200:
            raise RuntimeError(f"proxy segment answered {segment.status}")
        at_segment = trio.current_time() - began
        await connection.request("DELETE", f"/proxy/channels/{content_id}")
        return at_playlist, at_segment
    finally:
        await connection.aclose()


async def direct(engine: str) -> tuple[float, float]:
    host, port, _ = split_url(engine)
    connection = Connection(host, port)
    try:
        began = trio.current_time()
        query = f"id={random_content_id()}&format=json&pid={uuid.uuid4()}"
        opened = await connection.request("GET", f"/ace/manifest.m3u8?{query}")
        session = json.loads(opened.body)["response"]
        _, _, playlist_path = split_url(session["playback_url"])
        playlist = await connection.request("GET", playlist_path)
        at_playlist = trio.current_time() - began
        _, uris = parse_playlist(playlist.body.decode())
        segment = await connection.request("GET", uris[0])
        if segment.status != 200:
            raise RuntimeError(f"engine segment answered {segment.status}")
        at_segment = trio.current_time() - began
        _, _, command_path = split_url(session["command_url"])
        await connection.request("GET", f"{command_path}?method=stop")
        return at_playlist, at_segment
    finally:
        await connection.aclose()


async def run(delays: Sequence[float], trials: int) -> list[dict[str, Any]]:
    rows = []
    for delay in delays:
        print(f"{NAME}: segment delay {delay:g} s", file=sys.stderr)
        spec = {"engine_ports": 1, "backlog": 6.0, "segment_delay": delay}
        async with start_child("fixtures", spec) as fixtures:
            engine = fixtures.ready["engines"][0]
            config = {
                "engines": [engine],
                "max_streams_per_engine": 1000,
                "hls_initial_segments": INITIAL_SEGMENTS,
                "log_level": "WARNING",
            }
            async with start_child("proxy", {"config": config}) as proxy:
                base = proxy.ready["proxy"]
                await through_proxy(base)  # warm-up: imports, first connections
                await direct(engine)
                samples: dict[str, list[tuple[float, float]]] = {"proxy": [], "direct": []}
                for trial in range(trials):
                    order = ("proxy", "direct") if trial % 2 == 0 else ("direct", "proxy")
                    for which in order:
                        if which == "proxy":
                            samples["proxy"].append(await through_proxy(base))
                        else:
                            samples["direct"].append(await direct(engine))
        rows.append({"delay": delay, "samples": samples})
    return rows


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), dpi=90, sharey=True)
    labels = [f"{r['delay']:g} s" for r in rows]
    xs = range(len(rows))
    width = 0.38
    for axis, index, title in ((axes[0], 0, "first playlist"), (axes[1], 1, "first segment")):
        for offset, which in ((-width / 2, "direct"), (width / 2, "proxy")):
            medians = [percentile([s[index] * 1000 for s in r["samples"][which]], 50) for r in rows]
            axis.bar([x + offset for x in xs], medians, width, label=which)
        axis.set_xticks(list(xs), labels)
        axis.set_xlabel("engine segment download delay")
        axis.set_title(title, fontsize=9)
    axes[0].set_ylabel("median time from first request (ms)")
    axes[0].legend(fontsize=7)
    fig.suptitle("startup: a new channel, through the proxy vs the engine directly", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(NAME, __doc__ or "")
    args = parser.parse_args(argv)
    trials = args.runs or (4 if args.quick else 15)
    started = begin()
    rows = trio.run(run, DELAYS, trials)
    table = []
    summary = []
    for r in rows:
        entry: dict[str, Any] = {"delay": r["delay"]}
        for index, what in ((0, "playlist"), (1, "segment")):
            proxy = spread([s[index] for s in r["samples"]["proxy"]], 1000)
            engine = spread([s[index] for s in r["samples"]["direct"]], 1000)
            entry[what] = {
                "proxy_ms": proxy,
                "direct_ms": engine,
                "ratio": ratio(proxy["median"], engine["median"]),
            }
            table.append(
                (
                    f"{r['delay']:g} s",
                    f"first {what}",
                    proxy["n"],
                    engine["median"],
                    engine["p99"],
                    proxy["median"],
                    proxy["p99"],
                    proxy["max"],
                    entry[what]["ratio"],
                    proxy["median"] - engine["median"],
                )
            )
        summary.append(entry)
    targets = [
        Target(
            f"first playlist, proxy ÷ direct (medians), segment delay {e['delay']:g} s",
            e["playlist"]["ratio"],
            "<=",
            1.2,
        )
        for e in summary
    ]
    columns = [
        "segment delay",
        "time to",
        "trials",
        "direct p50 ms",
        "direct p99 ms",
        "proxy p50 ms",
        "proxy p99 ms",
        "proxy max ms",
        "proxy ÷ direct",
        "proxy − direct ms",
    ]
    md = write_result(
        NAME,
        out=args.out,
        quick=args.quick,
        started=started,
        setup={
            "trials_per_delay": trials,
            "hls_initial_segments": INITIAL_SEGMENTS,
            "engine": "session opens at once, 3 segments (6 s) already on air",
            "client": "separate process, one new connection per trial",
        },
        tables=[("Per segment delay", columns, table)],
        targets=targets,
        data={"summary": summary, "rows": rows},
        plot=lambda path: plot(rows, path),
        notes=[
            "The proxy answers its first playlist only once HLS_INITIAL_SEGMENTS segments "
            "are in memory (by design: every segment it lists is then served at once), so "
            "with slow segment downloads its first playlist waits for them while the engine's "
            "own playlist does not; time to first segment is the figure a viewer sees.",
        ],
    )
    print(md.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
