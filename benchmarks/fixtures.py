"""What the proxy talks to in a benchmark: a fake orchestrator with a delay knob.

The engine is :class:`trioproxy.testing.engine.SimulatedEngine`; this module adds what the package
does not ship: an orchestrator that accepts events like the real one, as slowly as asked.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import trio
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope

from trioproxy.http.asgi import read_body, send_response, serve_lifespan

__all__ = ["SlowOrchestrator"]


@dataclass
class SlowOrchestrator:
    """Answers ``POST /events/<kind>`` after ``delay`` seconds; ``GET /engines`` lists none.

    ``GET /streams?status=started`` lists the streams started and not yet ended, and
    ``GET /looping-streams`` none, as the real orchestrator does when nothing loops.
    """

    delay: float = 0.0
    events: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    running: set[str] = field(default_factory=set)

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        if body is None:
            return
        status, payload = await self.handle(scope["method"], scope["path"], body)
        data = json.dumps(payload).encode()
        await send_response(send, status, [(b"content-type", b"application/json")], data)

    async def handle(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        if method == "GET" and path == "/engines":
            return 200, []
        if method == "GET" and path == "/streams":
            return 200, [{"id": stream_id, "status": "started"} for stream_id in self.running]
        if method == "GET" and path == "/looping-streams":
            return 200, {"stream_ids": []}
        if method != "POST" or not path.startswith("/events/"):
            return 404, {"detail": "not found"}
        kind = path.removeprefix("/events/")
        self.in_flight += 1
        try:
            if self.delay:
                await trio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        self.events[kind] += 1
        if kind == "stream_started":
            try:
                stream_id = json.loads(body)["labels"]["stream_id"]
            except (ValueError, KeyError, TypeError):
                return 422, {"detail": "bad event"}
            self.running.add(stream_id)
            return 200, {"id": stream_id, "status": "started"}
        try:
            self.running.discard(json.loads(body)["stream_id"])
        except (ValueError, KeyError, TypeError):
            return 422, {"detail": "bad event"}
        return 200, {"updated": True, "stream": None}
