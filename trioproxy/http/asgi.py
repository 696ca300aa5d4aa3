"""The few ASGI helpers the hand-written apps share (the segment path, the simulated engine)."""

from __future__ import annotations

from collections.abc import Iterable

from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable

__all__ = ["read_body", "send_response", "serve_lifespan"]


async def send_response(
    send: ASGISendCallable,
    status: int,
    headers: Iterable[tuple[bytes, bytes]],
    body: bytes,
    *,
    head: bool = False,
) -> None:
    """Send a whole response with a Content-Length; a HEAD gets the headers only."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": b"" if head else body, "more_body": False})


async def read_body(receive: ASGIReceiveCallable) -> bytes | None:
    """The whole request body, or None when the client went away first."""
    body = b""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def serve_lifespan(receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    """Answer a ``lifespan`` scope for an app with nothing to start or stop."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
