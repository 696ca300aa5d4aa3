"""An engine on a real socket that can die the ways real engines die, and come back.

:class:`EngineServer` serves an ASGI app (a :class:`~trioproxy.testing.engine.SimulatedEngine`,
usually) with Hypercorn on 127.0.0.1 and can be

- **killed** (:meth:`EngineServer.kill`): the server is gone, its connections closed; nothing
  listens on the port any more, so every new connection is refused;
- **hung** (:meth:`EngineServer.hang`): connections are accepted and requests read, and none is
  answered, on new connections and on those already open (a frozen engine process);
- **started again** (:meth:`EngineServer.start`) on the same port, answering as before.

It records every request that reached it (when, what kind, and whether it was answered), so a
test can tell that nothing was sent to an engine after some moment. It keeps time with
``trio.current_time()`` and needs a real clock (real sockets).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal

import hypercorn.config
import hypercorn.trio
import trio
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope

from .faults import request_kind
from .harness import App

__all__ = ["EngineRequest", "EngineServer", "EngineState", "engine_servers"]

EngineState = Literal["up", "down", "hung"]


@dataclass(frozen=True, slots=True)
class EngineRequest:
    """One request that reached the engine."""

    at: float
    kind: str
    """``open``, ``playlist``, ``segment``, ``stat``, ``stop`` or ``other``."""
    path: str
    hung: bool
    """It arrived while the engine was hung: never answered."""


class EngineServer:
    """``app`` on 127.0.0.1: started, killed, hung and started again on the same port."""

    def __init__(self, nursery: trio.Nursery, app: App, *, host: str = "127.0.0.1") -> None:
        self.app = app
        self.host = host
        self.port = 0
        """The port, once first started (0 before: the first start picks a free one)."""
        self.requests: list[EngineRequest] = []
        self.state: EngineState = "down"
        self.changed_at = trio.current_time()
        """When the state last changed."""
        self._nursery = nursery
        self._scope: trio.CancelScope | None = None
        self._finished = trio.Event()
        self._finished.set()

    @property
    def url(self) -> str:
        assert self.port, "start the server first"
        return f"http://{self.host}:{self.port}"

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "http":
            hung = self.state == "hung"
            self.requests.append(
                EngineRequest(trio.current_time(), request_kind(scope["path"]), scope["path"], hung)
            )
            if hung:
                await trio.sleep_forever()  # until the server is killed or started anew
        await self.app(scope, receive, send)

    def since(self, at: float, kind: str | None = None) -> list[EngineRequest]:
        """The requests that arrived after ``at`` (of ``kind``, when given)."""
        return [r for r in self.requests if r.at > at and (kind is None or r.kind == kind)]

    async def start(self) -> None:
        """Listen and answer (again). Returns once the port accepts connections."""
        await self._stop()
        config = hypercorn.config.Config()
        config.bind = [f"{self.host}:{self.port}"]
        config.accesslog = None
        config.errorlog = logging.getLogger("hypercorn.error")
        scope = trio.CancelScope()
        finished = trio.Event()
        self._scope, self._finished = scope, finished

        async def serve(*, task_status: trio.TaskStatus[list[str]]) -> None:
            try:
                with scope:
                    await hypercorn.trio.serve(self, config, task_status=task_status)
            finally:
                finished.set()

        binds: list[str] = await self._nursery.start(serve)
        self.port = int(binds[0].rsplit(":", 1)[1])
        self._set("up")

    async def kill(self) -> None:
        """Stop listening and close every connection: new connections are refused."""
        await self._stop()
        self._set("down")

    async def hang(self) -> None:
        """Keep every connection and accept new ones, answer nothing from now on."""
        assert self.state == "up", "only a running engine can hang"
        self._set("hung")
        await trio.lowlevel.checkpoint()

    def _set(self, state: EngineState) -> None:
        self.state = state
        self.changed_at = trio.current_time()

    async def _stop(self) -> None:
        if self._scope is not None:
            self._scope.cancel()
            self._scope = None
        await self._finished.wait()


@asynccontextmanager
async def engine_servers(apps: Sequence[App]) -> AsyncIterator[list[EngineServer]]:
    """One started :class:`EngineServer` per app, each on its own port; all stopped on exit."""
    async with trio.open_nursery() as nursery:
        servers = [EngineServer(nursery, app) for app in apps]
        for server in servers:
            await server.start()
        try:
            yield servers
        finally:
            nursery.cancel_scope.cancel()
