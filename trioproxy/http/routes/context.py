"""What every group of routes shares: the registry, the settings, and what a request says of
its client (its address, its player key, the address it reached us under)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from quart import Response, request
from werkzeug.datastructures import Headers

from ...channels.join import Visitor
from ...channels.registry import Registry
from ...config import Config
from ...errors import ProxyError
from ..edge import believe_client, visitor
from ..forwarded import FORWARDED_HEADERS, public_base
from ..guards import Access
from ..ids import client_identity
from ..keys import KEY_PARAM, PlayerKeys
from ..lineup import Lineup
from ..logins import XtreamLogins
from ..media import CORS
from ..playlists import PLAYLIST_TYPE, Asked, Reply, key_param

__all__ = [
    "PLAYLIST_TYPE",
    "RELAY_HEADERS",
    "Context",
    "Handler",
    "error_response",
    "json_response",
    "reply_response",
]

RELAY_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")
"""Headers a reverse proxy adds to what it relays."""

Handler = Callable[..., Awaitable[Any]]
"""A route's handler: its path's parts as keyword arguments, a Quart response value back."""


def error_response(error: ProxyError) -> Response:
    response = Response(
        json.dumps(error.body()), status=error.status, content_type="application/json"
    )
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(max(1, round(error.retry_after)))
    response.headers.update(CORS)
    return response


def reply_response(reply: Reply) -> Response:
    """A :class:`~..playlists.Reply` as Quart's response."""
    headers = Headers([(name.decode(), value.decode("latin-1")) for name, value in reply.headers])
    return Response(reply.body, status=reply.status, headers=headers)


def json_response(body: object, status: int = 200) -> Response:
    """``body`` as JSON, uncached, with CORS."""
    return Response(
        json.dumps(body),
        status=status,
        content_type="application/json",
        headers={"Cache-Control": "no-cache", **CORS},
    )


class Context:
    """The proxy's state and settings, and the current request as the routes read it."""

    def __init__(self, registry: Registry, config: Config) -> None:
        self.registry = registry
        self.config = config
        self.access = Access.of(config)
        self.keys = PlayerKeys.of(config)
        self.logins = XtreamLogins.of(config)
        self.lineup = Lineup(config.channels_file or ())

    def carried_key(self) -> str:
        """``&key=…`` of the request's player key for the URLs it is handed (checked by
        :class:`~..app.ProxyApp` before the request got here), or ``""``."""
        return self.key_param(request.args.get(KEY_PARAM))

    def key_param(self, key: str | None) -> str:
        """``&key=<key>`` while player keys are required, else ``""``."""
        return key_param(self.keys, key)

    def asked(self) -> Asked:
        """The current request as :mod:`..playlists` reads it."""
        return Asked(
            request.method,
            request.path,
            request.query_string,
            request.args,
            self.client(),
            request.headers.get("X-Playback-Session-Id"),
            request.headers.get("User-Agent", ""),
            request.root_path,
        )

    def client(self) -> str:
        """The client's address, as ``TRIOPROXY_TRUSTED_PROXIES`` lets us believe it."""
        return believe_client(request.scope, self.config.trusted_proxies)

    def control_client(self) -> str:
        """The client as the control API judges it. A request relayed by a proxy we do not trust
        (it carries forwarding headers, yet its peer is not in ``TRIOPROXY_TRUSTED_PROXIES``) is
        never a local client, whatever its peer address: a reverse proxy on the same host would
        otherwise make every client on the network look like loopback."""
        address = self.client()
        relayed = any(name in request.headers for name in RELAY_HEADERS)
        if relayed and address == (request.remote_addr or ""):
            return "relayed by an untrusted proxy"
        return address

    def player(self, token: str | None = None) -> Visitor:
        """This request's player: its address as the caps count it, and its identity on the
        channel (``token``, else what the request says of itself: :func:`.ids.client_identity`)."""
        if token is None:
            token = client_identity(
                request.args.get("client"),
                request.headers.get("X-Playback-Session-Id"),
                self.client(),
                request.headers.get("User-Agent", ""),
            )
        config = self.config
        return visitor(request.scope, token, config.trusted_proxies, config.media_servers)

    def base(self) -> str:
        """``scheme://host/prefix`` the client reached us under (behind a trusted proxy, what it
        forwarded): for absolute URLs in lists."""
        headers = request.headers
        return public_base(
            request.scheme,
            headers.get("Host"),
            request.root_path,
            peer=request.remote_addr or "",
            forwarded={name: ", ".join(headers.getlist(name)) for name in FORWARDED_HEADERS},
            trusted=self.config.trusted_proxies,
        )
