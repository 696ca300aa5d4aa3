"""The few ASGI helpers the hand-written hot paths share."""

from __future__ import annotations

from collections.abc import Iterable

from hypercorn.typing import ASGISendCallable

__all__ = ["send_response"]


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
