"""Request guards: what the proxy believes about a request before routing it.

- :func:`check_request` refuses oversized targets, headers and bodies, and queries that are not
  UTF-8, before the router sees them.
- :func:`check_bearer` guards every state-changing endpoint when ``API_KEY`` is set; the
  comparison runs in constant time and the key is never logged.
- :func:`client_address` believes ``X-Forwarded-For`` only when the peer is one of
  ``TRIOPROXY_TRUSTED_PROXIES`` (:func:`is_trusted_peer`).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable

from ..config import IPNetwork
from ..errors import Forbidden, Unauthorized

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_HEADER_BYTES",
    "MAX_TARGET_BYTES",
    "check_bearer",
    "check_request",
    "client_address",
    "is_trusted_peer",
]

MAX_HEADER_BYTES = 16 * 1024
"""All request headers together (Hypercorn caps what it buffers; this caps what it accepts)."""
MAX_TARGET_BYTES = 8 * 1024
"""Path and query string."""
MAX_BODY_BYTES = 64 * 1024
"""A declared request body; Quart's ``MAX_CONTENT_LENGTH`` caps bodies read without one."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def check_bearer(authorization: str | None, api_key: str | None) -> None:
    """Raise 401/403 unless ``authorization`` carries ``Bearer <api_key>`` (no key: allow all)."""
    if not api_key:
        return
    scheme, _, supplied = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not supplied.strip():
        raise Unauthorized("this endpoint needs Authorization: Bearer <API_KEY>")
    if not hmac.compare_digest(supplied.strip().encode(), api_key.encode()):
        raise Forbidden("wrong API key")


def check_request(
    path: str, query: bytes, headers: Iterable[tuple[bytes, bytes]]
) -> tuple[int, str, str] | None:
    """Status, code and message for a request refused before routing, else None: over a size
    limit, or a query string that is not UTF-8 (the router would fail on it)."""
    if len(path.encode("utf-8", "replace")) + len(query) > MAX_TARGET_BYTES:
        return 414, "uri_too_long", f"the request target exceeds {MAX_TARGET_BYTES} bytes"
    try:
        query.decode("utf-8")
    except UnicodeDecodeError:
        return 400, "bad_request", "the query string is not UTF-8"
    total = 0
    for name, value in headers:
        total += len(name) + len(value) + 4
        if name == b"content-length":
            declared = value.strip()
            if not declared.isdigit() or int(declared) > MAX_BODY_BYTES:
                return 413, "payload_too_large", f"request bodies are limited to {MAX_BODY_BYTES} B"
    if total > MAX_HEADER_BYTES:
        return 431, "headers_too_large", f"request headers exceed {MAX_HEADER_BYTES} bytes"
    return None


def _parse_ip(text: str) -> IPAddress | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, nets: Iterable[IPNetwork]
) -> bool:
    return any(address in net for net in nets if address.version == net.version)


def is_trusted_peer(peer: str, trusted: tuple[IPNetwork, ...]) -> bool:
    """Whether the peer ``peer`` (``addr`` or ``addr:port``) is one of the trusted proxies."""
    peer_ip = _parse_ip(peer)
    return peer_ip is not None and _trusted(peer_ip, trusted)


def client_address(peer: str, forwarded_for: str | None, trusted: tuple[IPNetwork, ...]) -> str:
    """The client's address: the peer, or, behind a trusted proxy, what it forwarded.

    ``X-Forwarded-For`` is read right to left, skipping trusted hops; the first address that is
    not a trusted proxy is the client. A peer that is not trusted is the client whatever it says.
    """
    if not trusted or not forwarded_for:
        return peer
    peer_ip = _parse_ip(peer)
    if peer_ip is None or not _trusted(peer_ip, trusted):
        return peer
    client = peer
    for hop in reversed(forwarded_for.split(",")[-32:]):
        address = _parse_ip(hop)
        if address is None:
            break  # garbage from here on: keep the last address a trusted hop vouched for
        client = str(address)
        if not _trusted(address, trusted):
            break
    return client
