"""An MPEG-TS player over ASGI, for in-memory tests: httpx's ASGI transport buffers a whole
response, which a continuous stream never ends."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import trio
from hypercorn.typing import ASGIReceiveEvent, ASGISendEvent, HTTPScope

from trioproxy.testing.harness import App

__all__ = ["TsClient"]


@dataclass
class TsClient:
    """GETs ``path`` from ``app``; records what arrives and when. :meth:`leave` disconnects;
    ``reading = False`` makes it stop reading (its next body write blocks)."""

    app: App
    path: str
    query: str = ""
    method: str = "GET"
    client: tuple[str, int] = ("127.0.0.1", 40000)
    """The peer the request comes from."""
    status: int | None = None
    headers: dict[bytes, bytes] = field(default_factory=dict)
    chunks: list[tuple[float, bytes]] = field(default_factory=list)
    ended: bool = False
    """The response ended (``more_body`` false)."""
    reading: bool = True
    started: trio.Event = field(default_factory=trio.Event)
    finished: trio.Event = field(default_factory=trio.Event)
    _gone: trio.Event = field(default_factory=trio.Event)

    @property
    def body(self) -> bytes:
        return b"".join(data for _, data in self.chunks)

    def leave(self) -> None:
        self._gone.set()

    async def run(self) -> None:
        scope: HTTPScope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": self.method,
            "scheme": "http",
            "path": self.path,
            "raw_path": self.path.encode(),
            "query_string": self.query.encode(),
            "root_path": "",
            "headers": [(b"host", b"proxy.test")],
            "client": self.client,
            "server": ("proxy.test", 80),
            "state": {},  # type: ignore[typeddict-item]
            "extensions": {},
        }
        requested = False

        async def receive() -> ASGIReceiveEvent:
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await self._gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: ASGISendEvent) -> None:
            event: Any = message
            if event["type"] == "http.response.start":
                self.status = event["status"]
                self.headers = dict(event["headers"])
                self.started.set()
                return
            if not self.reading:
                await trio.sleep_forever()
            if event.get("body"):
                self.chunks.append((trio.current_time(), bytes(event["body"])))
            if not event.get("more_body", False):
                self.ended = True

        try:
            await self.app(scope, receive, send)
        finally:
            self.finished.set()
