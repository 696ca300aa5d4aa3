"""Request guards: what the proxy believes about a request before routing it.

- :func:`check_request` refuses oversized targets, headers and bodies, and queries that are not
  UTF-8, before the router sees them.
- :func:`check_bearer` guards every state-changing endpoint when ``API_KEY`` is set; the
  comparison runs in constant time and the key is never logged.
- :class:`Access` decides who may change state and who sees engine session details, key or no
  key (see its docstring); :func:`log_access` says at start-up which rule holds.
- :func:`client_address` believes ``X-Forwarded-For`` only when the peer is one of
  ``TRIOPROXY_TRUSTED_PROXIES`` (:func:`is_trusted_peer`).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from ..config import Config, IPNetwork
from ..errors import Forbidden, ProxyError, Unauthorized

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_HEADER_BYTES",
    "MAX_TARGET_BYTES",
    "Access",
    "check_bearer",
    "check_request",
    "client_address",
    "is_loopback",
    "is_loopback_bind",
    "is_trusted_peer",
    "log_access",
]

log = logging.getLogger(__name__)

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


def is_loopback(address: str) -> bool:
    """Is ``address`` (an IP, ``[v6]``, ``v4:port``, or ``localhost``) a loopback address?"""
    if address.strip().lower() == "localhost":
        return True
    ip = _parse_ip(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip is not None and ip.is_loopback


def is_loopback_bind(bind: str) -> bool:
    """Does ``TRIOPROXY_BIND`` (``HOST:PORT``) listen on loopback only (127.0.0.0/8, ::1,
    ``localhost``)? ``0.0.0.0``, ``::``, any other address and any other host name do not."""
    host = bind.strip().rpartition(":")[0]
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return bool(host) and is_loopback(host)


AccessRule = Literal["key", "loopback", "open", "closed"]


@dataclass(frozen=True)
class Access:
    """Who may use the control API (every request but GET, HEAD, OPTIONS) and who sees engine
    session details in ``/proxy/status``.

    - ``API_KEY`` set (rule ``key``): state changes need ``Bearer <API_KEY>``; so do the details.
    - No key, ``TRIOPROXY_BIND`` on loopback only (``loopback``): state changes and details for
      loopback clients. Behind a reverse proxy on the same host, every request comes from
      loopback unless ``TRIOPROXY_TRUSTED_PROXIES`` names the proxy.
    - No key, ``TRIOPROXY_OPEN_CONTROL`` (``open``): state changes for anyone; details for
      loopback clients only.
    - No key, bound beyond loopback (``closed``): state changes refused with 403; details for
      loopback clients only.
    """

    api_key: str | None
    loopback_only: bool
    opted_in: bool

    @classmethod
    def of(cls, config: Config) -> Access:
        return cls(config.api_key, is_loopback_bind(config.bind), config.open_control)

    @property
    def rule(self) -> AccessRule:
        if self.api_key:
            return "key"
        if self.loopback_only:
            return "loopback"
        return "open" if self.opted_in else "closed"

    def check_control(self, authorization: str | None, client: str) -> None:
        """Raise 401/403 unless the request may change state (``client`` as believed)."""
        rule = self.rule
        if rule == "key":
            check_bearer(authorization, self.api_key)
        elif rule == "closed":
            raise Forbidden(
                "the control API is closed: API_KEY is not set and the proxy listens beyond "
                "loopback (TRIOPROXY_BIND); set API_KEY, or TRIOPROXY_OPEN_CONTROL=1 to allow "
                "it without a key"
            )
        elif rule == "loopback" and not is_loopback(client):
            raise Forbidden(
                "the control API answers loopback clients only while API_KEY is not set; set "
                "API_KEY, or TRIOPROXY_OPEN_CONTROL=1 to allow it without a key"
            )

    def shows_details(self, authorization: str | None, client: str) -> bool:
        """May this request see engine session ids (and what can be built from them)?"""
        if self.api_key:
            try:
                check_bearer(authorization, self.api_key)
            except ProxyError:
                return False
            return True
        return is_loopback(client)


def log_access(config: Config) -> None:
    """One start-up line saying which rule guards the control API, and one saying whether
    stream URLs need a player key (a warning when they are open to the network)."""
    access = Access.of(config)
    rule = access.rule
    if rule == "key":
        log.info("control API: API_KEY set; state changes and session details need it")
    elif rule == "loopback":
        log.info(
            "control API: no API_KEY, listening on loopback only (%s): loopback clients may "
            "change state",
            config.bind,
        )
    elif rule == "open":
        log.warning(
            "control API: no API_KEY and TRIOPROXY_OPEN_CONTROL is set: anyone who reaches %s "
            "may stop channels",
            config.bind,
        )
    else:
        log.warning(
            "control API: closed (403): no API_KEY and %s is beyond loopback; set API_KEY, or "
            "TRIOPROXY_OPEN_CONTROL=1 to open it",
            config.bind,
        )
    player_keys = len(dict.fromkeys((*config.player_keys, *config.player_keys_file)))
    if player_keys:
        log.info(
            "stream URLs: %d player key(s) set; players need ?key= to start or watch", player_keys
        )
    elif not access.loopback_only:
        log.warning(
            "stream URLs are open: no TRIOPROXY_PLAYER_KEYS and %s is beyond loopback, so "
            "anyone who reaches it may start channels on your engines",
            config.bind,
        )
