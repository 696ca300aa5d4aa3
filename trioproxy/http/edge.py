"""Who a request comes from, read once at the edge.

:class:`~.app.ProxyApp` reads the client's address of every HTTP request once, as
``TRIOPROXY_TRUSTED_PROXIES`` lets it believe it (:func:`~.guards.client_address`), and keeps it
in the request's scope; every route then asks :func:`believe_client` or :func:`visitor`, so the
HLS, MPEG-TS, source and rendition paths all count a client the same way.
"""

from __future__ import annotations

from typing import Any

from ..channels.join import Visitor
from ..channels.per_address import address_key, is_media_server
from ..config import IPNetwork
from .guards import client_address

__all__ = ["CLIENT_KEY", "believe_client", "visitor", "visitor_of"]

CLIENT_KEY = "trioproxy.client"
"""The scope entry that holds the client's address."""


def believe_client(scope: Any, trusted: tuple[IPNetwork, ...]) -> str:
    """The client of the HTTP request ``scope``: its peer, or what a trusted proxy forwarded.
    Read once and kept in the scope."""
    known = scope.get(CLIENT_KEY)
    if isinstance(known, str):
        return known
    peer = (scope.get("client") or ("", 0))[0]
    forwarded = [v.decode("latin-1") for k, v in scope["headers"] if k == b"x-forwarded-for"]
    address = client_address(peer, ", ".join(forwarded) or None, trusted)
    scope[CLIENT_KEY] = address
    return address


def visitor(
    scope: Any,
    token: str,
    trusted: tuple[IPNetwork, ...],
    media_servers: tuple[IPNetwork, ...] = (),
) -> Visitor:
    """The request's client as a channel's caps count it (not at all: a media server),
    playing as ``token``."""
    return visitor_of(believe_client(scope, trusted), token, media_servers)


def visitor_of(client: str, token: str, media_servers: tuple[IPNetwork, ...] = ()) -> Visitor:
    """The client believed to be ``client`` as a channel's caps count it, playing as ``token``."""
    return Visitor(address_key(client), token, not is_media_server(client, media_servers))
