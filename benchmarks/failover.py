"""failover: the freeze a player sees when the engine under its channel is killed.

Two simulated engines, each served by Hypercorn on 127.0.0.1 (1 s segments, sessions open
after ``OPEN_DELAY``); the proxy (its registry and app) runs in this process and reaches them
over real sockets. One player reloads the playlist every 0.25 s and fetches each new segment.
Each kill stops the server of the engine the channel plays from (connections refused) and starts
it again once the channel has moved; the freeze of a kill is the longest gap between two new
segments the player got around it. Beside it: the time the engine takes to open a session.
"""

from __future__ import annotations

import itertools
import json
import socket
import sys
from collections.abc import Sequence
from typing import Any

import httpx
import hypercorn.config
import hypercorn.trio
import trio

from trioproxy.channels.registry import Registry
from trioproxy.config import Config
from trioproxy.http.app import ProxyApp
from trioproxy.testing.engine import SimulatedEngine
from trioproxy.testing.harness import asgi_transport, small_media
from trioproxy.testing.players import parse_playlist, random_content_id

from .report import Target, base_parser, begin, write_result
from .stats import percentile

NAME = "failover"
OPEN_DELAY = 0.3
SEGMENT = 1.0


class EngineServer:
    """One simulated engine on a fixed local port, which can be stopped and started again."""

    def __init__(self, nursery: trio.Nursery, port: int) -> None:
        self.engine = SimulatedEngine(
            small_media(), durations=[SEGMENT], backlog=3.0, open_delay=OPEN_DELAY
        )
        self.port = port
        self._nursery = nursery
        self._scope: trio.CancelScope | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        config = hypercorn.config.Config()
        config.bind = [f"127.0.0.1:{self.port}"]
        config.accesslog = config.errorlog = None
        scope = trio.CancelScope()
        self._scope = scope

        async def serve(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            with scope:
                await hypercorn.trio.serve(self.engine, config, task_status=task_status)  # type: ignore[arg-type]

        await self._nursery.start(serve)

    def stop(self) -> None:
        if self._scope is not None:
            self._scope.cancel()
            self._scope = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def measure_open(http: httpx.AsyncClient, url: str) -> float:
    began = trio.current_time()
    response = await http.get(
        f"{url}/ace/manifest.m3u8", params={"format": "json", "id": random_content_id(), "pid": "x"}
    )
    response.raise_for_status()
    return trio.current_time() - began


async def run(kills: int) -> dict[str, Any]:
    async with trio.open_nursery() as nursery:
        servers = [EngineServer(nursery, free_port()), EngineServer(nursery, free_port())]
        for server in servers:
            await server.start()
        config = Config(
            engines=tuple(s.url for s in servers),
            hls_initial_segments=2,
            failover_cooldown=2.0,
            proxy_grace_period=600.0,
        )
        limits = httpx.Limits(max_connections=50, max_keepalive_connections=10)
        async with httpx.AsyncClient(timeout=None, limits=limits) as http:
            opens = [await measure_open(http, servers[0].url) for _ in range(5)]
            registry = Registry(config, http)
            async with trio.open_nursery() as inner:
                await inner.start(registry.run)
                freezes = await _kills(inner, registry, config, servers, kills)
                registry.shutdown()
        nursery.cancel_scope.cancel()
    return {"freezes": freezes, "opens": opens}


async def _kills(
    nursery: trio.Nursery,
    registry: Registry,
    config: Config,
    servers: list[EngineServer],
    kills: int,
) -> list[float]:
    transport = asgi_transport(ProxyApp(registry, config))
    async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as player:
        content = random_content_id()
        redirect = await player.get("/ace/getstream", params={"id": content})
        url = redirect.headers["location"]
        arrivals: list[float] = []
        seen: set[str] = set()

        async def play() -> None:
            while True:
                response = await player.get(url)
                if response.status_code == 200:
                    _, uris = parse_playlist(response.text)
                    for uri in uris:
                        if uri not in seen:
                            seen.add(uri)
                            segment = await player.get(uri)
                            if segment.status_code == 200:
                                arrivals.append(trio.current_time())
                await trio.sleep(0.25)

        play_scope = trio.CancelScope()

        async def play_until_cancelled() -> None:
            with play_scope:
                await play()

        nursery.start_soon(play_until_cancelled)
        while len(arrivals) < 3:  # noqa: ASYNC110 (polls plain data)
            await trio.sleep(0.1)
        freezes = []
        for _ in range(kills):
            await trio.sleep(3.0)  # steady playing, and past the last breaker
            channel = registry.get(content)
            assert channel is not None
            switches = channel.switches.total
            victim = next(s for s in servers if s.url == channel.engine.base_url)
            killed_at = trio.current_time()
            victim.stop()
            with trio.fail_after(60):
                while channel.switches.total == switches or not channel.session:  # noqa: ASYNC110 (polls plain data)
                    await trio.sleep(0.05)
            count = len(arrivals)
            with trio.fail_after(60):
                while len(arrivals) < count + 2:  # noqa: ASYNC110 (polls plain data)
                    await trio.sleep(0.05)
            await victim.start()
            around = [at for at in arrivals if at >= killed_at - 3 * SEGMENT]
            gaps = [b - a for a, b in itertools.pairwise(around)]
            freezes.append(max(gaps))
        play_scope.cancel()
    return freezes


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(NAME, __doc__ or "")
    args = parser.parse_args(argv)
    kills = args.runs or (3 if args.quick else 20)
    started = begin()
    data = trio.run(run, kills)
    freezes, opens = data["freezes"], data["opens"]
    open_time = percentile(opens, 50)
    median, p99 = percentile(freezes, 50), percentile(freezes, 99)
    limit = open_time + SEGMENT
    print(
        json.dumps(
            {"kills": kills, "freeze_median": median, "freeze_p99": p99, "session_open": open_time}
        )
    )
    write_result(
        NAME,
        out=args.out,
        quick=args.quick,
        started=started,
        setup={"kills": kills, "segment_seconds": SEGMENT, "open_delay": OPEN_DELAY},
        tables=[
            (
                "Player-visible freeze per failover (longest gap between delivered segments)",
                ["kills", "freeze median s", "freeze p99 s", "session open s"],
                [[kills, median, p99, open_time]],
            )
        ],
        targets=[Target("freeze p99", p99, "<=", limit, "s")],
        data=data,
        plot=None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
