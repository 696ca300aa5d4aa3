"""failover: the freeze a player sees when the engine under its channel is killed, and where it
goes, with the engine watch (the default) and without it, kills alternating between the two.

Two simulated engines, each served by Hypercorn on 127.0.0.1 (1 s segments of MPEG-TS packets,
sessions open after ``OPEN_DELAY``); the proxy (its registry and app) runs in this process and
reaches them over real sockets. Two players watch the one channel: an HLS player (in memory) that
reloads the playlist every 0.25 s and fetches each new segment, and a TS player on a real socket
(``format=ts``). Each kill stops the server of the engine the channel plays from (connections
refused) and starts it again once the channel has moved. Every kill is a first failover: no
backoff, a switch limit out of reach, a 2 s breaker (the previous engine's has closed by the next
kill). Kills alternate: the session killed holds the engine watch's idle connection
(``TRIOPROXY_FAILOVER_WATCH=1``, the default), then the next one does not (``=0``), and so on.

Per kill: the HLS freeze (the longest gap between two new segments the player got around the
kill), the TS freeze (the longest gap between media bytes on the TS connection), and the time
from the old session's last segment to the HLS player's first new one cut into what it is made
of, from the proxy's own records (its log lines, its sessions' records, its window's appends):

- *newest segment's age at the kill*: from the old session's last segment into the window to
  the kill (chance: the kill comes anywhere within a segment's time);
- *until found dead*: from the kill to the first sign of it: the watch hearing the engine gone
  (the session failed), or the first reload that failed;
- *reload retries*: from that to the session declared failed (further refused reloads);
- *switch + open*: from that to the new session open (the open takes ``OPEN_DELAY``);
- *first segment into the window*: from the open to the first new segment appended;
- *until the player fetched it*: from that to the player having it.

Beside it: the time the engine takes to open a session.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import hypercorn.config
import hypercorn.trio
import trio

from trioproxy import service
from trioproxy.channels.channel import Channel
from trioproxy.config import Config
from trioproxy.testing.engine import SimulatedEngine
from trioproxy.testing.engine_server import EngineServer, engine_servers
from trioproxy.testing.harness import asgi_transport
from trioproxy.testing.players import parse_playlist, random_content_id
from trioproxy.testing.ts_reader import TsReader

from .report import Target, base_parser, begin, write_result
from .stats import percentile, spread

NAME = "failover"
OPEN_DELAY = 0.3
SEGMENT = 1.0
PHASES = (
    ("newest segment's age at the kill", "age"),
    ("until found dead", "detect"),
    ("reload retries", "retries"),
    ("switch + open", "open"),
    ("first segment into the window", "window"),
    ("until the player fetched it", "player"),
)


def ts_media(count: int = 64, packets: int = 6) -> list[bytes]:
    """Distinct segments of whole MPEG-TS packets (PID 0x100, counters running on), so a TS
    player can tell them from null packets; nothing decodes them."""
    media = []
    counter = 0
    for n in range(count):
        segment = b""
        for _ in range(packets):
            segment += bytes([0x47, 0x01, 0x00, 0x10 | counter]) + bytes([n]) * 184
            counter = (counter + 1) % 16
        media.append(segment)
    return media


def engine() -> SimulatedEngine:
    return SimulatedEngine(ts_media(), durations=[SEGMENT], backlog=3.0, open_delay=OPEN_DELAY)


class Records(logging.Handler):
    """The proxy's log lines, each with the Trio time it was written (and nothing printed)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[tuple[float, str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((trio.current_time(), record.name, str(record.msg)))

    def first(self, after: float, logger: str, text: str) -> float | None:
        return next(
            (at for at, name, msg in self.lines if at > after and name == logger and text in msg),
            None,
        )


@dataclass
class Kill:
    killed_at: float
    watch: bool
    freeze: float = float("nan")
    ts_freeze: float = float("nan")
    phases: dict[str, float] = field(default_factory=dict)


def watched(kill: int) -> bool:
    """Whether the session of kill number ``kill`` (from 0) holds the engine watch."""
    return kill % 2 == 0


async def measure_open(http: httpx.AsyncClient, url: str) -> float:
    began = trio.current_time()
    response = await http.get(
        f"{url}/ace/manifest.m3u8", params={"format": "json", "id": random_content_id(), "pid": "x"}
    )
    response.raise_for_status()
    return trio.current_time() - began


async def serve_app(nursery: trio.Nursery, app: Any, done: trio.Event) -> str:
    """``app`` on 127.0.0.1 port 0 until ``done`` is set; its base URL."""
    config = hypercorn.config.Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = config.errorlog = None
    config.graceful_timeout = 1.0

    async def serve(*, task_status: trio.TaskStatus[list[str]]) -> None:
        await hypercorn.trio.serve(app, config, shutdown_trigger=done.wait, task_status=task_status)

    binds: list[str] = await nursery.start(serve)
    return binds[0]


async def run(kills: int) -> dict[str, Any]:
    records = Records()
    proxy_log = logging.getLogger("trioproxy")
    proxy_log.addHandler(records)
    proxy_log.setLevel(logging.INFO)
    try:
        async with engine_servers([engine(), engine()]) as servers:
            config = Config(
                engines=tuple(s.url for s in servers),
                hls_initial_segments=2,
                failover_cooldown=2.0,
                failover_backoff=0.0,
                failover_max_switches=10 * kills,
                proxy_grace_period=600.0,
            )
            limits = httpx.Limits(max_connections=50, max_keepalive_connections=10)
            async with httpx.AsyncClient(timeout=None, limits=limits) as http:
                opens = [await measure_open(http, servers[0].url) for _ in range(5)]
                async with (
                    service.proxy(config, http, connect=trio.open_tcp_stream) as assembled,
                    trio.open_nursery() as inner,
                ):
                    results = await _kills(inner, assembled, servers, kills, records)
                    inner.cancel_scope.cancel()
    finally:
        proxy_log.removeHandler(records)
    data: dict[str, Any] = {"opens": opens}
    for mode, label in ((True, "watch"), (False, "reload")):
        mine = [k for k in results if k.watch == mode]
        data[label] = {
            "freezes": [k.freeze for k in mine],
            "ts_freezes": [k.ts_freeze for k in mine],
            "phases": {key: [k.phases.get(key, float("nan")) for k in mine] for _, key in PHASES},
        }
    return data


async def _kills(
    nursery: trio.Nursery,
    assembled: service.Proxy,
    servers: list[EngineServer],
    kills: int,
    records: Records,
) -> list[Kill]:
    registry, app = assembled.registry, assembled.app
    served = trio.Event()
    watch = registry.policy.connect

    def watching(kill: int) -> None:
        """Sessions opened from now on watch their engine for kill ``kill``, or do not."""
        registry.policy.connect = watch if watched(kill) else None

    proxy_url = await serve_app(nursery, app, served)
    transport = asgi_transport(app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://proxy") as player,
        httpx.AsyncClient(timeout=None) as ts_client,
    ):
        content = random_content_id()
        watching(0)
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

        ts = TsReader(f"{proxy_url}/ace/getstream?id={content}&format=ts")
        players = trio.CancelScope()

        async def both() -> None:
            with players:
                async with trio.open_nursery() as playing:
                    playing.start_soon(play)
                    playing.start_soon(ts.run, ts_client)

        nursery.start_soon(both)
        while len(arrivals) < 3 or not ts.media_packets:  # noqa: ASYNC110 (polls plain data)
            await trio.sleep(0.1)
        channel = registry.get(content)
        assert channel is not None
        appends = _record_appends(channel)
        results = []
        phase = random.Random(1)
        for number in range(kills):
            # Steady playing, past the last breaker; the kill anywhere within a segment's time.
            await trio.sleep(3.0 + phase.uniform(0.0, SEGMENT))
            assert registry.get(content) is channel, channel.end_reason
            switches = channel.switches.total
            victim = next(s for s in servers if s.url == channel.engine.base_url)
            kill = Kill(trio.current_time(), watched(number))
            watching(number + 1)  # for the session this kill moves the channel to
            await victim.kill()
            with trio.fail_after(60):
                while channel.switches.total == switches or not channel.session:  # noqa: ASYNC110 (polls plain data)
                    await trio.sleep(0.05)
            count = len(arrivals)
            with trio.fail_after(60):
                while len(arrivals) < count + 2:  # noqa: ASYNC110 (polls plain data)
                    await trio.sleep(0.05)
            await victim.start()
            around = [at for at in arrivals if at >= kill.killed_at - 3 * SEGMENT]
            kill.freeze = max(b - a for a, b in itertools.pairwise(around))
            kill.ts_freeze = ts.longest_media_gap(kill.killed_at, trio.current_time())
            kill.phases = _phases(kill.killed_at, channel, arrivals, appends, records)
            results.append(kill)
        players.cancel()
    served.set()
    return results


def _record_appends(channel: Channel) -> list[float]:
    """When each segment went into ``channel``'s window from now on."""
    appends: list[float] = []
    publish = channel.feed.on_append

    def appended() -> None:
        appends.append(trio.current_time())
        publish()

    channel.feed.on_append = appended
    return appends


def _phases(
    killed_at: float,
    channel: Channel,
    arrivals: list[float],
    appends: list[float],
    records: Records,
) -> dict[str, float]:
    """The freeze of one kill, cut at the proxy's own records (see the module's text)."""
    old, new = channel.sessions[-2], channel.sessions[-1]
    assert old.ended_at is not None
    assert new.opened_at is not None
    last_append = max(at for at in appends if at <= killed_at)
    first_failure = records.first(killed_at, "trioproxy.channels.fetcher", "reload failed")
    failed = old.ended_at
    if first_failure is None:  # the first failed reload failed the session
        first_failure = failed
    first_append = min(at for at in appends if at >= new.opened_at)
    fetched = min(at for at in arrivals if at >= first_append)
    points = [last_append, killed_at, first_failure, failed, new.opened_at, first_append, fetched]
    return {key: b - a for (_, key), (a, b) in zip(PHASES, itertools.pairwise(points), strict=True)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(NAME, __doc__ or "")
    args = parser.parse_args(argv)
    per_mode = args.runs or (3 if args.quick else 20)
    started = begin()
    data = trio.run(run, 2 * per_mode)
    open_time = percentile(data["opens"], 50)
    limit = open_time + SEGMENT
    figures: dict[str, dict[str, float]] = {}
    for label in ("watch", "reload"):
        mode = data[label]
        figures[label] = {
            "freeze_median": percentile(mode["freezes"], 50),
            "freeze_p99": percentile(mode["freezes"], 99),
            "ts_freeze_median": percentile(mode["ts_freezes"], 50),
            "ts_freeze_p99": percentile(mode["ts_freezes"], 99),
        }
    on, off = figures["watch"], figures["reload"]
    print(json.dumps({"kills_per_mode": per_mode, "session_open": open_time, **figures}))

    def freeze_row(name: str, label: str) -> list[Any]:
        f = figures[label]
        return [name, per_mode, *(f[key] for key in f), open_time]

    def ratio(key: str) -> float:
        return on[key] / off[key] if off[key] else float("nan")

    def phase_row(name: str, watch: list[float], reload: list[float]) -> list[Any]:
        w, r = spread(watch), spread(reload)
        return [name, w["median"], w["p99"], r["median"], r["p99"]]

    on_phases, off_phases = data["watch"]["phases"], data["reload"]["phases"]
    phases = [phase_row(name, on_phases[key], off_phases[key]) for name, key in PHASES]
    sums = [
        [math.fsum(parts) for parts in zip(*mode.values(), strict=True)]
        for mode in (on_phases, off_phases)
    ]
    phases.append(
        phase_row("all: the old session's last segment in to the player's first new", *sums)
    )
    write_result(
        NAME,
        out=args.out,
        quick=args.quick,
        started=started,
        setup={
            "kills_per_mode": per_mode,
            "order": "alternating: watch, reload, watch, ...",
            "segment_seconds": SEGMENT,
            "open_delay": OPEN_DELAY,
            "failover_backoff": 0,
            "failover_cooldown": 2.0,
            "player_reload_seconds": 0.25,
        },
        tables=[
            (
                "Player-visible freeze per failover (HLS: longest gap between delivered segments; "
                "TS: longest gap between media bytes)",
                [
                    "found by",
                    "kills",
                    "HLS freeze median s",
                    "HLS freeze p99 s",
                    "TS freeze median s",
                    "TS freeze p99 s",
                    "session open s",
                ],
                [
                    freeze_row("the engine watch (TRIOPROXY_FAILOVER_WATCH=1, default)", "watch"),
                    freeze_row("the next reload (TRIOPROXY_FAILOVER_WATCH=0)", "reload"),
                ],
            ),
            (
                "Watch ÷ reload, from the same run (kills interleaved)",
                ["figure", "ratio"],
                [
                    ["HLS freeze median", ratio("freeze_median")],
                    ["HLS freeze p99", ratio("freeze_p99")],
                    ["TS freeze median", ratio("ts_freeze_median")],
                    ["TS freeze p99", ratio("ts_freeze_p99")],
                ],
            ),
            (
                "Where the freeze goes (per kill, seconds; the phases add up to the last row)",
                ["phase", "watch median", "watch p99", "reload median", "reload p99"],
                phases,
            ),
        ],
        targets=[
            Target("HLS freeze median (watch)", on["freeze_median"], "<=", limit, "s"),
            Target("TS freeze median (watch)", on["ts_freeze_median"], "<=", limit, "s"),
            Target("HLS freeze p99 (watch)", on["freeze_p99"], "<=", limit, "s"),
            Target("TS freeze p99 (watch)", on["ts_freeze_p99"], "<=", limit, "s"),
        ],
        data=data,
        plot=None,
        notes=[
            "Every kill is a first failover (TRIOPROXY_FAILOVER_BACKOFF=0, the switch limit out "
            "of reach): with the default backoff, a further kill within "
            "TRIOPROXY_FAILOVER_WINDOW waits 1, 2, 4, 8 s more before its switch.",
            "With the watch, the session holds an idle connection to its engine; the kill closes "
            "it, the watch's connect at once is refused, and the session fails: what is left is "
            "the newest segment's age at the kill plus the open.",
            "Without it, a dead engine is found by the next playlist reload, one target duration "
            "after the last (a refused reload or segment download fails the session at once; a "
            "reload whose connection was lost is tried again at once, and refused).",
            "The failed session's stop runs beside the new session's open, not in the freeze.",
            "The TS player gets each segment as it goes into the window: its freeze is the "
            "proxy's own gap. The HLS player's adds its own reload pace (0.25 s).",
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
