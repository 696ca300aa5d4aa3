"""The soak's fixtures: players coming and going, and a fault injector.

Everything here runs in the soak's own process, on 127.0.0.1; the proxy under test runs in a
child process so that its RSS and file descriptors are its own.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import trio

from trioproxy.testing.faults import FAULTS, FaultyEngine
from trioproxy.testing.orchestrator import FakeOrchestrator
from trioproxy.testing.players import HttpxGetter, Player, PlayerLog, Reply

from .report import pyplot

__all__ = ["Injector", "Players", "RudePlayer", "plot"]

log = logging.getLogger("soak")


@dataclass
class RudePlayer(Player):
    """With ``http`` set, leaves in the middle of a segment now and then (30 % of them)."""

    http: httpx.AsyncClient | None = None
    base: str = ""
    rng: random.Random = field(default_factory=random.Random)

    async def segment(self, url: str) -> Reply | None:
        if self.http is None or self.rng.random() >= 0.3:
            return await super().segment(url)
        began = trio.current_time()
        async with self.http.stream("GET", urljoin(self.base, url)) as response:
            self.log.answered("segment", began, response.status_code)
            async for _chunk in response.aiter_raw(4096):
                break
            self.log.abandoned += 1
            await response.aclose()
        return None


@dataclass
class Players:
    """Players joining and leaving channels at random; ``log`` counts every answer they get."""

    proxy: str
    keys: list[str]
    rng: random.Random
    log: PlayerLog = field(default_factory=lambda: PlayerLog(keep_requests=False))
    active: int = 0
    joined: int = 0

    async def player(self, http: httpx.AsyncClient, lifetime: float) -> None:
        self.active += 1
        self.joined += 1
        try:
            with trio.move_on_after(lifetime):
                await self._play(http)
        finally:
            self.active -= 1

    async def _play(self, http: httpx.AsyncClient) -> None:
        # A few popular channels stay up; the rest come and go with their few players.
        weights = [1.0 / (rank + 1) for rank in range(len(self.keys))]
        key = self.rng.choices(self.keys, weights)[0]
        # Each honours Retry-After on a 502/503 and leaves on any other error.
        player = RudePlayer(
            HttpxGetter(http, self.proxy),
            self.log,
            start_with=2,
            retry_after=True,
            leave_on_error=True,
            base=self.proxy,
            rng=self.rng,
        )
        if self.rng.random() < 0.05:  # a broken player: reloads 50 times a second
            player.pace, player.segments = 0.02, False
        elif self.rng.random() < 0.2:  # leaves in the middle of a segment now and then
            player.http = http
        await player.watch(key)


@dataclass
class Injector:
    """Injects one fault at a time, at random, each for a bounded time; logs what it did."""

    engines: list[FaultyEngine]
    orchestrator: FakeOrchestrator
    proxy: str
    api_key: str
    rng: random.Random
    began: float = 0.0
    done: Counter[str] = field(default_factory=Counter)
    timeline: list[dict[str, Any]] = field(default_factory=list)

    async def run(self, http: httpx.AsyncClient, every: float) -> None:
        """A fault every ``every`` seconds on average; several may overlap."""
        async with trio.open_nursery() as nursery:
            while True:
                await trio.sleep(self.rng.uniform(0.5 * every, 1.5 * every))
                nursery.start_soon(self.one, http)

    async def one(self, http: httpx.AsyncClient) -> None:
        choice = self.rng.choice(
            [
                "session_fault",
                "session_fault",
                "session_fault",
                "engine_ends_session",
                "open_error",
                "open_slow",
                "open_non_json",
                "orchestrator_5xx",
                "orchestrator_slow",
                "orchestrator_garbage_lists",
                "orchestrator_ends_stream",
                "delete_channel",
            ]
        )
        engine = self.rng.choice(self.engines)
        duration = self.rng.uniform(5.0, 40.0)
        started = trio.current_time()
        detail = ""
        if choice == "session_fault":
            sessions = [s.session_id for s in engine.inner.open_sessions]
            if not sessions:
                return
            session_id = self.rng.choice(sessions)
            fault = self.rng.choice(FAULTS)
            engine.faults[session_id] = fault
            detail = fault
            await trio.sleep(duration)
            engine.clear(session_id)
        elif choice == "engine_ends_session":
            sessions = [s.session_id for s in engine.inner.open_sessions]
            if not sessions:
                return
            engine.end_session(self.rng.choice(sessions))
        elif choice in ("open_error", "open_slow", "open_non_json"):
            if choice == "open_error":
                engine.inner.session_error = "content unavailable"
            elif choice == "open_slow":
                engine.inner.open_delay = 4.0
            else:
                engine.open_non_json = True
            await trio.sleep(duration)
            engine.inner.session_error = None
            engine.inner.open_delay = 0.0
            engine.open_non_json = False
        elif choice == "orchestrator_5xx":
            self.orchestrator.status = 503
            await trio.sleep(duration)
            self.orchestrator.status = 200
        elif choice == "orchestrator_slow":
            self.orchestrator.delay = 5.0  # below the sender's 15 s attempt timeout
            await trio.sleep(duration)
            self.orchestrator.delay = 0.0
        elif choice == "orchestrator_garbage_lists":
            self.orchestrator.list_body = b"<html>oops"
            await trio.sleep(duration)
            self.orchestrator.list_body = None
        elif choice == "orchestrator_ends_stream":
            detail = self.orchestrator.end_one(self.rng) or ""
        else:
            status = await http.get(f"{self.proxy}/proxy/status")
            channels = [c["channel"] for c in status.json()["channels"]]
            if not channels:
                return
            name = self.rng.choice(channels)
            response = await http.delete(
                f"{self.proxy}/proxy/channels/{name}",
                headers={"Authorization": f"Bearer {self.api_key}"},
            )
            detail = f"{name[:8]} → {response.status_code}"
        self.done[choice] += 1
        self.timeline.append(
            {"at": round(started - self.began, 1), "fault": choice, "detail": detail}
        )
        log.info("fault: %s %s", choice, detail)


def plot(report: dict[str, Any], path: Path) -> None:
    """RSS and open fds over time; players and channels below, with the injected faults."""
    plt = pyplot()
    samples = report["samples"]
    t = [s["t"] / 60.0 for s in samples]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    top.plot(t, [s["rss_kib"] / 1024.0 for s in samples], color="tab:blue", label="RSS (MiB)")
    top.set_ylabel("proxy RSS (MiB)", color="tab:blue")
    top.set_ylim(bottom=0)
    fd_axis = top.twinx()
    fd_axis.plot(t, [s["fds"] for s in samples], color="tab:orange", label="open fds")
    fd_axis.set_ylabel("open file descriptors", color="tab:orange")
    fd_axis.set_ylim(bottom=0)
    top.set_title(
        f"trioproxy soak, {report['duration_minutes']:g} min: "
        f"events {report['events']['sent']}/{report['events']['expected']}, "
        f"sessions opened {report['sessions']['opened']} / stopped "
        f"{report['sessions']['stopped_by_proxy'] + report['sessions']['ended_by_engine']}"
    )
    bottom.plot(t, [s["players"] for s in samples], label="players", color="tab:green")
    bottom.plot(t, [s["channels"] or 0 for s in samples], label="channels", color="tab:purple")
    for fault in report["fault_timeline"]:
        bottom.axvline(fault["at"] / 60.0, color="tab:red", alpha=0.15, linewidth=1)
    top.axvline(report["duration_minutes"], color="grey", linestyle="--", linewidth=1)
    bottom.axvline(report["duration_minutes"], color="grey", linestyle="--", linewidth=1)
    bottom.set_xlabel("minutes (red lines: injected faults; dashed: players stop, channels drain)")
    bottom.set_ylabel("count")
    bottom.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
