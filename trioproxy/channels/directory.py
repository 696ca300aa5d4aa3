"""The engine directory: which engines exist, and which one takes the next channel.

With ``ORCHESTRATOR_URL`` and no ``TRIOPROXY_ENGINES``, the list comes from the orchestrator's
``/engines``, read every ``TRIOPROXY_ENGINE_REFRESH`` seconds. Its answers are not trusted
blindly: an orchestrator that restarts, or whose health probe of an engine timed out once,
answers an empty or partial list for a while, and the engines it leaves out still serve.

- A running channel is moved off its engine by the list only when the orchestrator has left that
  engine out of every list it read for :data:`ABSENCE_REFRESHES` refresh intervals (90 s at the
  default 30 s) *while listing other engines*. An empty list never moves a channel: it says
  nothing about any one engine. The engine's own failures (its playlist, its session, its
  connection) move a channel at once, elsewhere (``failover.py``).
- New channels get the engines of the latest list. When a list comes back empty after a
  non-empty one, new channels keep getting the last non-empty list for the same bound (logged
  once), then none until the orchestrator lists engines again (logged once).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import trio

from ..errors import NoEngineAvailable
from ..upstream.engine import Engine
from ..upstream.orchestrator import (
    Orchestrator,
    OrchestratorAuthError,
    OrchestratorError,
    parse_engines,
)

__all__ = ["EngineDirectory", "parse_engines"]

log = logging.getLogger(__name__)

ABSENCE_REFRESHES = 3
"""Refresh intervals an engine must be left out of lists that name other engines before the
channels on it move, and an empty list may stand before new channels stop getting the last
non-empty one."""


class EngineDirectory:
    """Knows the engines and their load; picks the least loaded one for a new channel.

    Load counts every channel from the moment it picks an engine (before its session is open)
    until its teardown is done, so a burst of new channels spreads across engines; a channel
    that fails over moves its load to its new engine. Each engine has a breaker: a session that
    failed on it opens it for ``TRIOPROXY_FAILOVER_COOLDOWN``, and while it is open the engine
    takes no failover and no new channel as long as another engine has room.
    """

    def __init__(
        self,
        *,
        static: tuple[str, ...],
        max_streams_per_engine: int,
        orchestrator: Orchestrator | None = None,
        refresh_interval: float = 30.0,
    ) -> None:
        self._engines = [Engine(url) for url in static]
        self._dynamic = not static and orchestrator is not None
        self._orchestrator = orchestrator
        self._refresh_interval = refresh_interval
        self._max = max_streams_per_engine
        self._load: Counter[str] = Counter()
        self._breaker: dict[str, float] = {}
        """Engine URL → until when it is avoided: a session on it failed."""
        self._changed = trio.Event()
        """Set (and replaced) whenever the engine list is read anew."""
        self._absent: dict[str, float] = {}
        """Engine URL (of an engine carrying channels) → since when the lists that named other
        engines have left it out."""
        self._listing_others = False
        """The latest list read named at least one engine."""
        self._kept_until: float | None = None
        """While the lists are empty: until when new channels still get the last non-empty one."""
        self.last_refresh_error: str | None = None

    @property
    def absence_limit(self) -> float:
        """Seconds an engine may be left out of the lists before its channels move."""
        return ABSENCE_REFRESHES * self._refresh_interval

    @property
    def engines(self) -> list[Engine]:
        return list(self._engines)

    def load(self, engine: Engine) -> int:
        return self._load[engine.base_url]

    def acquire(self) -> Engine:
        """Pick an engine for a new channel and count it as loaded at once."""
        engine = self.acquire_if(None)
        assert engine is not None
        return engine

    def acquire_if(self, accept: Callable[[Engine], bool] | None) -> Engine | None:
        """:meth:`acquire`, with ``accept`` narrowing the choice (admission control).

        None when ``accept`` refuses every engine that has room; no room at all raises.
        """
        candidates = [e for e in self._engines if self._load[e.base_url] < self._max]
        if candidates and accept is not None:
            candidates = [e for e in candidates if accept(e)]
            if not candidates:
                return None
        if not candidates:
            if not self._engines:
                message = "no engine is known"
                if self.last_refresh_error:
                    message += f" (engine list: {self.last_refresh_error})"
                elif self._kept_until is not None:
                    message += " (the orchestrator lists no healthy engine)"
            else:
                message = f"every engine carries {self._max} channels already"
            raise NoEngineAvailable(message, retry_after=10)
        # An engine whose breaker is open takes a new channel only when no other one has room.
        engine = min(
            candidates,
            key=lambda e: (self.breaker_open(e), self._load[e.base_url], not e.forwarded),
        )
        self._load[engine.base_url] += 1
        return engine

    def acquire_instead(self, failed: Engine) -> Engine | None:
        """An engine other than ``failed``, with room and its breaker closed (least loaded),
        counted as loaded at once; None when there is none."""
        candidates = [
            e
            for e in self._engines
            if e.base_url != failed.base_url
            and self._load[e.base_url] < self._max
            and not self.breaker_open(e)
        ]
        if not candidates:
            return None
        engine = min(candidates, key=lambda e: (self._load[e.base_url], not e.forwarded))
        self._load[engine.base_url] += 1
        return engine

    # ---- the breaker: an engine whose session failed is avoided for a cool-down --------------

    def trip(self, engine: Engine, cooldown: float) -> None:
        """Open ``engine``'s breaker for ``cooldown`` seconds from now."""
        if cooldown <= 0:
            return
        until = trio.current_time() + cooldown
        if until > self._breaker.get(engine.base_url, -math.inf):
            self._breaker[engine.base_url] = until
            log.warning("engine %s: breaker open for %g s", engine.base_url, cooldown)

    def breaker_open(self, engine: Engine) -> bool:
        until = self._breaker.get(engine.base_url)
        if until is None:
            return False
        if trio.current_time() >= until:
            del self._breaker[engine.base_url]
            return False
        return True

    async def wait_unlisted(self, engine: Engine) -> str:
        """Return once the orchestrator has left ``engine`` out of its lists for
        :attr:`absence_limit` seconds while listing other engines, counted from this call at
        the earliest (a channel that comes back to such an engine, for want of another with
        room, gets the whole bound again). Never for a static list, nor on empty lists."""
        if not self._dynamic:
            await trio.sleep_forever()
        began = trio.current_time()
        while True:
            await self._changed.wait()
            since = self._absent.get(engine.base_url)
            if since is None or not self._listing_others:
                continue
            absent = trio.current_time() - max(since, began)
            if absent >= self.absence_limit:
                return f"left the orchestrator's engine list ({absent:g} s without it)"

    def release(self, engine: Engine) -> None:
        self._load[engine.base_url] -= 1
        if self._load[engine.base_url] <= 0:
            del self._load[engine.base_url]

    def snapshot(self) -> list[dict[str, Any]]:
        return [
            {
                "url": e.base_url,
                "container_id": e.container_id,
                "forwarded": e.forwarded,
                "channels": self._load[e.base_url],
                "max_channels": self._max,
                "breaker_open_seconds": round(self._breaker[e.base_url] - trio.current_time(), 3)
                if self.breaker_open(e)
                else None,
            }
            for e in self._engines
        ]

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep the list fresh from the orchestrator (a static list needs nothing)."""
        task_status.started()
        if not self._dynamic:
            return
        deadline = trio.current_time()
        while True:
            with trio.move_on_after(max(5.0, self._refresh_interval / 2)):
                await self.refresh()
            deadline += self._refresh_interval
            await trio.sleep_until(max(deadline, trio.current_time()))

    async def refresh(self) -> None:
        assert self._orchestrator is not None
        try:
            engines = await self._orchestrator.engines()
        except OrchestratorError as exc:
            error = str(exc) or type(exc).__name__
            # A refused key is logged once by the client, for every kind of request.
            if error != self.last_refresh_error and not isinstance(exc, OrchestratorAuthError):
                log.warning("cannot read engines from the orchestrator: %s", error)
            self.last_refresh_error = error
            return
        if self.last_refresh_error is not None or (engines and len(engines) != len(self._engines)):
            log.info("engine list: %d healthy engine(s)", len(engines))
        self.last_refresh_error = None
        if engines:
            self._listed(engines)
        else:
            self._listed_none()
        self._changed.set()
        self._changed = trio.Event()

    def _listed(self, engines: list[Engine]) -> None:
        """A list naming engines: it is what new channels get; engines carrying channels that
        it leaves out count as absent from now (unless they already were)."""
        now = trio.current_time()
        if self._kept_until is not None:
            log.info("the orchestrator lists engines again")
            self._kept_until = None
        listed = {engine.base_url for engine in engines}
        for url in sorted(listed & self._absent.keys()):
            log.info("engine %s: in the orchestrator's engine list again", url)
        carrying = {url for url, load in self._load.items() if load > 0}
        self._absent = {url: self._absent.get(url, now) for url in carrying if url not in listed}
        for url in sorted(self._absent):
            if self._absent[url] == now:
                log.warning(
                    "engine %s: left out of the orchestrator's engine list; its channels move "
                    "if it stays out for %g s",
                    url,
                    self.absence_limit,
                )
        self._listing_others = True
        self._engines = engines

    def _listed_none(self) -> None:
        """An empty list: no channel moves; new channels keep the last list for a while."""
        self._listing_others = False
        if not self._engines:
            return
        now = trio.current_time()
        if self._kept_until is None:
            self._kept_until = now + self.absence_limit
            log.warning(
                "the orchestrator lists no healthy engine; running channels stay on their "
                "engines, and new channels get the last list (%d engine(s)) for %g s",
                len(self._engines),
                self.absence_limit,
            )
        elif now >= self._kept_until:
            log.warning(
                "the orchestrator has listed no healthy engine for %g s; new channels get no "
                "engine until it lists one",
                self.absence_limit,
            )
            self._engines = []
