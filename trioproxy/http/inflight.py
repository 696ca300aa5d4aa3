"""The per-address cap on requests a trusted proxy forwards: its connections carry many clients,
so there the cap counts requests in flight per forwarded address
(:func:`~trioproxy.http.guards.client_address`), on every path that answers them — the ASGI
middleware :class:`ForwardedLimit` and the lean HTTP/1.1 path (:meth:`ForwardedLimit.holding`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope

from ..channels.per_address import is_media_server
from .asgi import send_response
from .connections import ASGIApp, Nets, is_trusted
from .edge import believe_client

__all__ = ["ForwardedLimit"]


class ForwardedLimit:
    """ASGI middleware: at most ``limit`` requests in flight per client a trusted proxy forwards."""

    def __init__(self, app: ASGIApp, limit: int, trusted: Nets, media_servers: Nets = ()) -> None:
        self.app = app
        self.limit = limit
        self.trusted = trusted
        self.media_servers = media_servers
        self._in_flight: Counter[str] = Counter()

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        app = self.app
        if scope["type"] != "http" or not self.limit or not self.trusted:
            await app(scope, receive, send)
            return
        with self.holding(scope) as held:
            if held:
                await app(scope, receive, send)
                return
        body = json.dumps(
            {"error": "too_many_connections", "message": "too many requests in flight"}
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"retry-after", b"1"),
            (b"access-control-allow-origin", b"*"),
        ]
        await send_response(send, 503, headers, body, head=scope["method"] == "HEAD")

    @contextmanager
    def holding(self, scope: Any) -> Iterator[bool]:
        """Count the request ``scope`` (its ``client`` and ``headers``) in flight for its
        forwarded client inside the block; False when it is over the cap (nothing counted)."""
        peer = (scope.get("client") or ("", 0))[0]
        if not self.limit or not self.trusted or not is_trusted(peer, self.trusted):
            yield True  # counted per connection instead
            return
        address = believe_client(scope, self.trusted)  # read once: the routes find it kept
        if is_media_server(address, self.media_servers):
            yield True
            return
        if self._in_flight[address] >= self.limit:
            yield False
            return
        self._in_flight[address] += 1
        try:
            yield True
        finally:
            self._in_flight[address] -= 1
            if self._in_flight[address] <= 0:
                del self._in_flight[address]
