"""The address a client reached the proxy under, for the absolute URLs of ``/playlist.m3u``.

The request's scheme and ``Host`` header, under the app's mount point; behind one of
``TRIOPROXY_TRUSTED_PROXIES``, what that proxy says in ``X-Forwarded-Proto``, ``X-Forwarded-Host``
and ``X-Forwarded-Prefix`` instead. Of a header with several values (``a, b``) the right-most is
taken: the one the nearest proxy, the trusted one, set. A value that is not a plain scheme,
``host[:port]`` or path is ignored, so nothing a client sends can put a quote, a space or a line
break into a URL built from it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ..config import IPNetwork
from ..errors import BadRequest
from .guards import is_trusted_peer

__all__ = ["FORWARDED_HEADERS", "public_base"]

FORWARDED_HEADERS = ("x-forwarded-proto", "x-forwarded-host", "x-forwarded-prefix")

_HOST = re.compile(r"(?:[A-Za-z0-9_.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")
_PREFIX = re.compile(r"(?:/[A-Za-z0-9._~%!$&'()*+,;=:@-]+)+/?")


def _last(value: str | None) -> str:
    return (value or "").rsplit(",", 1)[-1].strip()


def public_base(
    scheme: str,
    host: str | None,
    root_path: str,
    *,
    peer: str,
    forwarded: Mapping[str, str],
    trusted: tuple[IPNetwork, ...],
) -> str:
    """``scheme://host/prefix`` the client used, without a trailing ``/``.

    ``forwarded`` holds the request's :data:`FORWARDED_HEADERS` (lower-case names, the values of
    repeated headers joined with commas); they count only when ``peer`` is trusted.
    """
    if scheme not in ("http", "https"):
        scheme = "http"
    if trusted and is_trusted_peer(peer, trusted):
        proto = _last(forwarded.get("x-forwarded-proto")).lower()
        if proto in ("http", "https"):
            scheme = proto
        forwarded_host = _last(forwarded.get("x-forwarded-host"))
        if _HOST.fullmatch(forwarded_host):
            host = forwarded_host
        prefix = _last(forwarded.get("x-forwarded-prefix"))
        if _PREFIX.fullmatch(prefix):
            root_path = prefix.rstrip("/") + root_path
    if host is None or not _HOST.fullmatch(host):
        raise BadRequest("the Host header is missing or not a host[:port]")
    if root_path and not _PREFIX.fullmatch(root_path):
        root_path = ""
    return f"{scheme}://{host}{root_path.rstrip('/')}"
