"""The Quart app: the routes of :mod:`.routes` (the table of who serves each URL), and what
every request goes through — JSON errors, the control guard, the player-key check.

:class:`ProxyApp`, the ASGI entry point, puts the lean media path (:mod:`.media`) in front of
this app; the app answers media requests too, more slowly, when used on its own.
"""

from __future__ import annotations

import json
from urllib.parse import quote

from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope
from quart import Quart, Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import BaseConverter

from ..channels.registry import Registry
from ..config import Config
from ..errors import ProxyError
from . import urls
from .asgi import send_response
from .edge import believe_client
from .keys import PlayerKeys
from .media import CORS, MediaDispatcher
from .routes import ShortEpg, route_table
from .routes.context import PLAYLIST_TYPE, Context, error_response

__all__ = ["PLAYLIST_TYPE", "ProxyApp", "create_app"]

_CONVERTERS = {
    part: type(f"{part}_converter", (BaseConverter,), {"regex": regex})
    for part, regex in urls.PARTS.items()
}
_UNGUARDED = (urls.LINEUP_POST.rule,)
"""POSTs that change nothing (a media server's channel scan): not the control API."""


def create_app(registry: Registry, config: Config, *, short_epg: ShortEpg | None = None) -> Quart:
    app = QuartTrio(__name__)
    # Quart would cut off any response body still being sent after 60 s; our waits have their
    # own deadlines instead.
    app.config["RESPONSE_TIMEOUT"] = None
    app.config["BODY_TIMEOUT"] = 30
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    app.url_map.converters.update(_CONVERTERS)
    context = Context(registry, config)

    @app.errorhandler(ProxyError)
    async def proxy_error(error: ProxyError) -> Response:
        return error_response(error)

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        code = {404: "not_found", 405: "method_not_allowed"}.get(status, "http_error")
        message = {
            404: f"nothing at {quote(request.path[:200])}",
            405: f"{request.method} is not allowed on {quote(request.path[:200])}",
        }.get(status, error.description or error.name)
        response = Response(
            json.dumps({"error": code, "message": message}),
            status=status,
            content_type="application/json",
        )
        response.headers.update(CORS)
        if isinstance(error, MethodNotAllowed) and error.valid_methods:
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response

    @app.before_request
    async def guard_state_changes() -> None:
        # Anything that can change state is the control API (see Access); GET, HEAD and OPTIONS
        # only read.
        if request.method not in ("GET", "HEAD", "OPTIONS") and request.path not in _UNGUARDED:
            context.access.check_control(
                request.headers.get("Authorization"), context.control_client()
            )

    for route in route_table(context, short_epg=short_epg):
        app.add_url_rule(
            route.path.rule,
            endpoint=route.path.rule,
            view_func=route.handler,
            methods=list(route.path.methods),
        )
    return app


class ProxyApp(MediaDispatcher):
    """The ASGI entry point: the lean media path in front of the Quart app, and in front of
    both, the player-key check (:mod:`.keys`), the one place every stream request goes through.
    A media server (``TRIOPROXY_MEDIA_SERVERS``) needs no key: it cannot add one to a tuner's
    address."""

    def __init__(
        self, registry: Registry, config: Config, *, short_epg: ShortEpg | None = None
    ) -> None:
        self.quart = create_app(registry, config, short_epg=short_epg)
        self.keys = PlayerKeys.of(config)
        super().__init__(registry, self.quart, config)

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "http":
            client = believe_client(scope, self.config.trusted_proxies)  # once, for every route
            path = scope["path"].removeprefix(scope.get("root_path", ""))
            try:
                self.keys.check_request(scope["method"], path, scope["query_string"], client)
            except ProxyError as refused:
                await _refuse(send, refused, head=scope["method"] == "HEAD")
                return
        await super().__call__(scope, receive, send)


async def _refuse(send: ASGISendCallable, error: ProxyError, *, head: bool) -> None:
    body = json.dumps(error.body()).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"cache-control", b"no-store"),
        *((name.lower().encode(), value.encode()) for name, value in CORS.items()),
    ]
    await send_response(send, error.status, headers, body, head=head)
