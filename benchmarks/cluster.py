"""cluster: instances of ``trioproxy serve`` as one cluster (one Redis), what relaying, a takeover,
HAProxy and an nginx cache cost.

Instances are processes (:func:`trioproxy.testing.instances.running_instance`); the simulated
engine (MPEG-TS only, 2 s segments) and the fake orchestrator run in a fixtures child; players
(lean HTTP/1.1 client, :mod:`benchmarks.loadgen`) and TS readers run here. Leases last
``LEASE`` seconds (``TRIOPROXY_LEASE_SECONDS``).

(a) **relay CPU**: one channel, owned by instance A and relayed by instance B (which reads A's
MPEG-TS); the same number of HLS players on each, at the same time; CPU (``/proc``) of each
process over the window, per player-minute; the ratio B/A per window.
(b) **takeover freeze**: a channel owned by one instance and read by a TS player on another;
``kill -9`` of the owner; the longest time without media at the player; a new instance is
started to keep three. Target p99 ≤ lease + session open (≈0 here) + one target duration.
(c) **HAProxy's added latency**: a segment of a running channel fetched through HAProxy
(``deploy/haproxy.cfg``) and straight from the instance that has it, alternately, one
keep-alive connection each.
(d) **hot channel behind nginx** (``deploy/nginx``): HLS players of one channel through the
nginx cache, then the same players straight at the proxy; segment requests the proxy answered
(its ``/metrics``) and its CPU.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from typing import Any
from urllib.parse import urljoin

import httpx
import trio

from trioproxy.testing.balancers import running_haproxy, running_nginx
from trioproxy.testing.instances import Instance, running_instance
from trioproxy.testing.players import PlayerLog, parse_playlist, random_content_id
from trioproxy.testing.redis_server import redis_server
from trioproxy.testing.ts_reader import TsReader

from .loadgen import Connection, play
from .report import Target, base_parser, begin, write_result
from .servers import start_child
from .stats import ratio, spread

NAME = "cluster"
LEASE = 3.0
SEGMENT = 2.0


def settings(redis_url: str, fixtures: dict[str, Any]) -> dict[str, str]:
    return {
        "TRIOPROXY_REDIS_URL": redis_url,
        "TRIOPROXY_LEASE_SECONDS": f"{LEASE:g}",
        "TRIOPROXY_REDIS_TIMEOUT": "1",
        "TRIOPROXY_UPSTREAM_MODE": "ts",
        "TRIOPROXY_ENGINES": fixtures["engines"][0],
        "ORCHESTRATOR_URL": fixtures["orchestrator"],
        "ACEXY_MAX_STREAMS_PER_ENGINE": "100",
        # One hot channel of 1,000 players (d): above the default cap of 100 per channel.
        "TRIOPROXY_MAX_PLAYERS_PER_CHANNEL": "2000",
        "TRIOPROXY_MAX_PLAYERS_PER_ADDRESS": "0",
        "TRIOPROXY_MAX_CHANNELS_PER_ADDRESS": "0",
        "TRIOPROXY_MAX_OPENING_PER_ADDRESS": "0",
        "TRIOPROXY_MAX_CONNECTIONS_PER_ADDRESS": "0",
        "TRIOPROXY_LOG_LEVEL": "WARNING",
    }


async def until_media(reader: TsReader, seconds: float = 30.0) -> None:
    with trio.fail_after(seconds):
        while True:
            if reader.media_packets:
                return
            await trio.sleep(0.05)


async def read_quietly(reader: TsReader, client: httpx.AsyncClient) -> None:
    with contextlib.suppress(httpx.HTTPError):  # the instance was killed under it
        await reader.run(client)


async def relay_cpu(a: Instance, b: Instance, players: int, seconds: float) -> dict[str, float]:
    """One window: ``players`` HLS players on ``a`` (the owner) and on ``b`` (a relay)."""
    key = random_content_id()
    async with httpx.AsyncClient(timeout=30) as client, trio.open_nursery() as nursery:
        opener = TsReader(f"{a.url}/ace/getstream?id={key}&format=ts")
        nursery.start_soon(read_quietly, opener, client)
        await until_media(opener)
        relayed = TsReader(f"{b.url}/ace/getstream?id={key}&format=ts")
        nursery.start_soon(read_quietly, relayed, client)
        await until_media(relayed)
        nursery.cancel_scope.cancel()
    logs = {"owner": PlayerLog(keep_requests=False), "relay": PlayerLog(keep_requests=False)}
    warmup = 2 * SEGMENT
    until = trio.current_time() + warmup + seconds
    async with trio.open_nursery() as nursery:
        for _ in range(players):
            nursery.start_soon(play, a.url, key, until, logs["owner"])
            nursery.start_soon(play, b.url, key, until, logs["relay"])
            await trio.sleep(SEGMENT / players)  # spread over one target duration
        await trio.sleep_until(until - seconds)
        cpu = {"owner": a.cpu_seconds(), "relay": b.cpu_seconds()}
        began = time.monotonic()
    wall = time.monotonic() - began
    used = {"owner": a.cpu_seconds() - cpu["owner"], "relay": b.cpu_seconds() - cpu["relay"]}
    minutes = players * wall / 60
    return {
        "owner_cpu_per_player_minute": used["owner"] / minutes,
        "relay_cpu_per_player_minute": used["relay"] / minutes,
        "ratio": ratio(used["relay"], used["owner"]),
        "owner_errors": len(logs["owner"].errors),
        "relay_errors": len(logs["relay"].errors),
    }


async def takeover(stack: AsyncExitStack, env: dict[str, str], live: list[Instance]) -> float:
    """Kill the owner of a fresh channel under a TS player on another instance; the freeze."""
    owner, watcher_at = live[0], live[1]
    key = random_content_id()
    async with httpx.AsyncClient(timeout=30) as client, trio.open_nursery() as nursery:
        opener = TsReader(f"{owner.url}/ace/getstream?id={key}&format=ts")
        nursery.start_soon(read_quietly, opener, client)
        await until_media(opener)
        watcher = TsReader(f"{watcher_at.url}/ace/getstream?id={key}&format=ts")
        nursery.start_soon(read_quietly, watcher, client)
        await until_media(watcher)
        await trio.sleep(SEGMENT + LEASE / 3 * (hash(key) % 100) / 100)  # a random phase
        owner.kill()
        killed = trio.current_time()
        with trio.fail_after(LEASE + 30):
            while True:
                if watcher.media_after(killed):
                    break
                await trio.sleep(0.05)
        await trio.sleep(SEGMENT)
        nursery.cancel_scope.cancel()
    live.remove(owner)
    live.append(await stack.enter_async_context(running_instance(env)))
    return watcher.longest_media_gap(start=killed - 0.5)


async def haproxy_latency(live: list[Instance], requests: int) -> dict[str, list[float]]:
    key = random_content_id()
    async with running_haproxy([i.address for i in live[:3]]) as haproxy:
        async with httpx.AsyncClient(timeout=30) as client:
            with trio.fail_after(15):
                for n in range(3):
                    await haproxy.wait_until(client, f"trioproxy{n + 1}", "UP")
            entry = await client.get(f"{haproxy.url}/ace/getstream?id={key}")
            playlist_url = urljoin(haproxy.url, entry.headers["location"])
            path = playlist_url.removeprefix(haproxy.url)

            async def newest() -> str:
                _, uris = parse_playlist((await client.get(playlist_url)).text)
                return urljoin(path, uris[-1])

            segment = await newest()
            (home,) = [
                i for i in live[:3] if (await client.get(i.url + segment)).status_code == 200
            ]
        times: dict[str, list[float]] = {"haproxy": [], "direct": []}
        connections = {
            "haproxy": Connection("127.0.0.1", int(haproxy.url.rsplit(":", 1)[1])),
            "direct": Connection("127.0.0.1", int(home.url.rsplit(":", 1)[1])),
        }
        async with httpx.AsyncClient(timeout=30) as client:
            for n in range(requests):
                if n % 50 == 0:
                    segment = await newest()
                order = ("haproxy", "direct") if n % 2 else ("direct", "haproxy")
                for name in order:
                    began = time.perf_counter()
                    response = await connections[name].request("GET", segment)
                    assert response.status == 200, (name, response.status)
                    times[name].append(time.perf_counter() - began)
        for connection in connections.values():
            await connection.aclose()
    return times


async def segments_served(instance: Instance) -> float:
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(f"{instance.url}/metrics")).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if re.match(r"trioproxy_segments_served(_total)?[{ ]", line)
    )


async def hot_channel(instance: Instance, players: int, seconds: float) -> dict[str, Any]:
    """The same players of one channel through nginx, then straight at ``instance``."""
    result: dict[str, Any] = {}
    async with running_nginx(instance.address) as nginx:
        for name, base in (("nginx", nginx), ("direct", instance.url)):
            key = random_content_id()
            log = PlayerLog(keep_requests=False)
            until = trio.current_time() + SEGMENT + seconds
            async with trio.open_nursery() as nursery:
                for _ in range(players):
                    nursery.start_soon(play, base, key, until, log)
                    await trio.sleep(SEGMENT / players)
                await trio.sleep_until(until - seconds)
                cpu, served, began = (
                    instance.cpu_seconds(),
                    await segments_served(instance),
                    time.monotonic(),
                )
                fetched = log.segments
            wall = time.monotonic() - began
            result[name] = {
                "players": players,
                "segments_fetched_per_s": (log.segments - fetched) / wall,
                "segments_at_proxy_per_s": (await segments_served(instance) - served) / wall,
                "proxy_cpu_percent": 100 * (instance.cpu_seconds() - cpu) / wall,
                "errors": len(log.errors),
            }
    return result


async def run(quick: bool, runs: int) -> dict[str, Any]:
    data: dict[str, Any] = {}
    async with AsyncExitStack() as stack:
        redis = await stack.enter_async_context(redis_server())
        fixtures = await stack.enter_async_context(
            start_child("fixtures", {"formats": "ts", "backlog": 6.0, "duration": SEGMENT})
        )
        env = settings(redis.url, fixtures.ready)
        live = [await stack.enter_async_context(running_instance(env)) for _ in range(3)]
        players, window = (20, 20.0) if quick else (50, 60.0)
        data["relay"] = [await relay_cpu(live[0], live[1], players, window) for _ in range(runs)]
        print(json.dumps({"relay": data["relay"]}), flush=True)
        kills = 3 if quick else 20
        data["freezes"] = [await takeover(stack, env, live) for _ in range(kills)]
        print(json.dumps({"freezes": data["freezes"]}), flush=True)
        data["haproxy"] = await haproxy_latency(live, 200 if quick else 1000)
        hot_players, hot_window = (100, 20.0) if quick else (1000, 40.0)
        data["hot"] = await hot_channel(live[2], hot_players, hot_window)
        print(json.dumps({"hot": data["hot"]}), flush=True)
    return data


def main(argv: Sequence[str] | None = None) -> int:
    args = base_parser(NAME, __doc__ or "").parse_args(argv)
    runs = args.runs or (1 if args.quick else 3)
    started = begin()
    data = trio.run(run, args.quick, runs)
    relay = data["relay"]
    ratios = [r["ratio"] for r in relay]
    freezes = spread(data["freezes"])
    proxied, direct = (
        spread(data["haproxy"]["haproxy"], 1000),
        spread(data["haproxy"]["direct"], 1000),
    )
    hot = data["hot"]
    limit = LEASE + SEGMENT
    targets = [
        Target(
            "relay CPU / owner CPU per player-minute (median)", spread(ratios)["median"], "<=", 1.2
        ),
        Target("takeover freeze p99", freezes["p99"], "<=", limit, "s"),
    ]
    tables = [
        (
            "(a) CPU per player-minute, owner and relay, same players at once",
            ["window", "owner (s CPU)", "relay (s CPU)", "relay/owner", "errors"],
            [
                [
                    n + 1,
                    r["owner_cpu_per_player_minute"],
                    r["relay_cpu_per_player_minute"],
                    r["ratio"],
                    r["owner_errors"] + r["relay_errors"],
                ]
                for n, r in enumerate(relay)
            ],
        ),
        (
            f"(b) takeover freeze at a player on another instance (kill -9, lease {LEASE:g} s)",
            ["kills", "median (s)", "p99 (s)", "max (s)", "min (s)", "target p99 (s)"],
            [
                [
                    freezes["n"],
                    freezes["median"],
                    freezes["p99"],
                    freezes["max"],
                    freezes["min"],
                    limit,
                ]
            ],
        ),
        (
            "(c) segment GET latency through HAProxy and direct (interleaved, ms)",
            ["path", "n", "median", "p99", "max", "min"],
            [
                [name, s["n"], s["median"], s["p99"], s["max"], s["min"]]
                for name, s in (("haproxy", proxied), ("direct", direct))
            ],
        ),
        (
            "(d) one hot channel: the same HLS players through nginx's cache and direct",
            [
                "path",
                "players",
                "segments fetched/s",
                "segments at the proxy/s",
                "proxy CPU %",
                "errors",
            ],
            [
                [
                    name,
                    h["players"],
                    h["segments_fetched_per_s"],
                    h["segments_at_proxy_per_s"],
                    h["proxy_cpu_percent"],
                    h["errors"],
                ]
                for name, h in hot.items()
            ],
        ),
    ]
    notes = [
        f"HAProxy adds {proxied['median'] - direct['median']:.3f} ms to the median segment GET"
        f" ({ratio(proxied['median'], direct['median']):.2f}× direct).",
        "nginx: proxy CPU with the cache / without = "
        f"{ratio(hot['nginx']['proxy_cpu_percent'], hot['direct']['proxy_cpu_percent']):.2f}.",
    ]
    write_result(
        NAME,
        out=args.out,
        quick=args.quick,
        started=started,
        setup={"lease_s": LEASE, "segment_s": SEGMENT, "instances": 3, "runs": runs},
        tables=tables,
        targets=targets,
        data=data,
        plot=None,
        notes=notes,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
