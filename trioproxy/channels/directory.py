"""The engine directory: which engines exist, and which one takes the next channel."""

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
        self.last_refresh_error: str | None = None

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

    def listed(self, engine: Engine) -> bool:
        return any(e.base_url == engine.base_url for e in self._engines)

    async def wait_unlisted(self, engine: Engine) -> str:
        """Return once ``engine`` is no longer in the list the orchestrator gives."""
        if not self._dynamic:
            await trio.sleep_forever()
        while self.listed(engine):
            await self._changed.wait()
        return "left the orchestrator's engine list"

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
        if self.last_refresh_error is not None or len(engines) != len(self._engines):
            log.info("engine list: %d healthy engine(s)", len(engines))
        self.last_refresh_error = None
        self._engines = engines
        self._changed.set()
        self._changed = trio.Event()
