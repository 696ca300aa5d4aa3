"""The lean media path: the ASGI dispatcher in front of the Quart app.

Segments, init sections and keys (the hot path) are answered here from memory, without Quart's
per-request machinery. The dispatcher also refuses, before anything routes them, requests over
the limits of :mod:`.guards` and WebSocket handshakes (the API has none), and answers CORS
preflights; everything else goes on to the app behind it.
"""

from __future__ import annotations

import json
from urllib.parse import quote

from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGISendCallable,
    Scope,
)

from ..channels.registry import Registry
from ..errors import NotFound
from ..observability.metrics import BYTES_SENT, SEGMENTS_SERVED
from ..upstream.resources import CONTENT_TYPES
from .asgi import send_response
from .guards import check_request
from .urls import MediaRequest, match_media

__all__ = ["CORS", "IMMUTABLE", "MediaDispatcher", "media_data", "no_such_media"]

CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": "Content-Length"}
_CORS_RAW = [(k.lower().encode(), v.encode()) for k, v in CORS.items()]
_PREFLIGHT = [
    *_CORS_RAW,
    (b"access-control-allow-methods", b"GET, HEAD, OPTIONS"),
    (b"access-control-allow-headers", b"*"),
    (b"access-control-max-age", b"86400"),
]
IMMUTABLE = "public, max-age=3600, immutable"
"""Media URLs never name two different byte strings: anything may cache them."""
_IMMUTABLE = IMMUTABLE.encode()
_NO_STORE = b"no-store"
_JSON = b"application/json"
_CONTENT_TYPES = {extension: kind.encode() for extension, kind in CONTENT_TYPES.items()}
_SERVED = SEGMENTS_SERVED.labels(kind="hls")
_SENT = BYTES_SENT.labels(kind="hls")


def media_data(registry: Registry, media: MediaRequest) -> bytes | None:
    """The bytes of the segment, init section or key ``media`` names, if the channel has them."""
    channel = registry.find(media.channel, media.incarnation)
    if channel is None:
        return None
    if media.resource:
        found = channel.resources.lookup(media.number)
        if found is not None and media.extension == ("key" if found[0] == "key" else "mp4"):
            return found[1]
        return None
    segment = channel.window.get(media.number)
    if segment is not None and segment.meta.extension == media.extension:
        return segment.data
    return None


def no_such_media(path: str) -> NotFound:
    return NotFound(f"no such media {quote(path)}")


class MediaDispatcher:
    """Serve media from ``registry``; hand every other request to ``app``."""

    def __init__(self, registry: Registry, app: ASGIFramework) -> None:
        self.registry = registry
        self.app = app

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "http":
            refused = check_request(scope["path"], scope["query_string"], scope["headers"])
            if refused is not None:
                status, code, message = refused
                body = json.dumps({"error": code, "message": message}).encode()
                headers = [(b"content-type", _JSON), (b"connection", b"close")]
                await send_response(send, status, [*headers, *_CORS_RAW], body)
                return
            # A CORS preflight, for the player-facing paths (not the control API).
            if scope["method"] == "OPTIONS" and not scope["path"].startswith("/proxy/"):
                await send_response(send, 204, _PREFLIGHT, b"")
                return
            if scope["method"] in ("GET", "HEAD"):
                media = match_media(scope["path"])
                if media is not None:
                    await self._media(scope["path"], scope["method"] == "HEAD", send, media)
                    return
        elif scope["type"] == "websocket":
            await _refuse_websocket(receive, send)
            return
        await self.app(scope, receive, send)

    async def _media(
        self, path: str, head: bool, send: ASGISendCallable, media: MediaRequest
    ) -> None:
        data = media_data(self.registry, media)
        if data is None:
            body = json.dumps(no_such_media(path).body()).encode()
            headers = [(b"content-type", _JSON), (b"cache-control", _NO_STORE)]
            await send_response(send, 404, [*headers, *_CORS_RAW], body, head=head)
            return
        headers = [
            (b"content-type", _CONTENT_TYPES[media.extension]),
            (b"cache-control", _IMMUTABLE),
        ]
        await send_response(send, 200, [*headers, *_CORS_RAW], data, head=head)
        if not head:
            _SENT.inc(len(data))
            if not media.resource:
                _SERVED.inc()


async def _refuse_websocket(receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    """No path of the API speaks WebSocket: close before accepting, which the server answers
    with an HTTP 403 (Quart would fail on the handshake, with a 500 and two tracebacks)."""
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close", "code": 1008, "reason": None})
