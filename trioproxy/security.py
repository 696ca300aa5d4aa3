"""What the proxy believes and where it fetches from: the control key, forwarded addresses and
the upstream hosts it may reach.

- :func:`check_bearer` guards every state-changing endpoint when ``API_KEY`` is set; the
  comparison runs in constant time and the key is never logged.
- :func:`client_address` believes ``X-Forwarded-For`` only when the peer is one of
  ``TRIOPROXY_TRUSTED_PROXIES``.
- :class:`UpstreamPolicy` and :class:`GuardedEngineClient` make the proxy fetch only from the
  engines it knows and the hosts ``TRIOPROXY_ALLOW_UPSTREAM_HOSTS`` names: a ``playback_url``,
  a segment URI or a redirect pointing anywhere else is refused before any request is made.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import logging
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

import httpx

from .config import Config, IPNetwork
from .engine import Engine, EngineClient, KeyType, Session
from .errors import EngineError, Forbidden, Unauthorized, UpstreamRefused

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_HEADER_BYTES",
    "MAX_TARGET_BYTES",
    "GuardedEngineClient",
    "UpstreamPolicy",
    "check_bearer",
    "check_request",
    "client_address",
    "source_hosts",
]

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
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


def _host_port(url: str) -> tuple[str, int] | None:
    try:
        httpx.URL(url)  # what httpx cannot parse (control characters, ...) is no URL to fetch
        parts = urlsplit(url)
        port = parts.port
    except (ValueError, httpx.InvalidURL):
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.hostname.lower(), port or (443 if parts.scheme == "https" else 80)


class UpstreamPolicy:
    """Which URLs the proxy may fetch: known engines, plus ``allow`` (host, host:port or ``*``).

    ``known`` (the directory's engines: few) is called on each check, so engines learnt later
    are allowed too; ``also_known`` (engines running channels still use: one per channel) only
    when ``known`` has no match, which is rare.
    """

    def __init__(
        self,
        known: Callable[[], Iterable[Engine]],
        allow: Iterable[str] = (),
        also_known: Callable[[], Iterable[Engine]] = lambda: (),
    ) -> None:
        self._known = known
        self._also_known = also_known
        self._any = False
        self._hosts: set[str] = set()
        self._host_ports: set[tuple[str, int]] = set()
        for item in allow:
            item = item.strip().lower()
            if item == "*":
                self._any = True
            elif item.startswith("[") and "]:" in item:
                host, _, port = item[1:].partition("]:")
                self._host_ports.add((host, int(port)))
            elif item.startswith("["):
                self._hosts.add(item.strip("[]"))
            elif item.count(":") == 1 and item.split(":")[1].isdigit():
                host, _, port = item.partition(":")
                self._host_ports.add((host, int(port)))
            else:
                self._hosts.add(item)

    def permits(self, url: str) -> bool:
        target = _host_port(url)
        if target is None:
            return False
        if self._any or target[0] in self._hosts or target in self._host_ports:
            return True
        return any(_engine_target(e.base_url) == target for e in self._known()) or any(
            _engine_target(e.base_url) == target for e in self._also_known()
        )

    def check(self, url: str) -> None:
        if not self.permits(url):
            raise UpstreamRefused(f"refused to fetch from {_shown(url)}: not a known engine")


def source_hosts(config: Config) -> list[str]:
    """``host:port`` of every configured source (``TRIOPROXY_SOURCES``, ``_FILE``)."""
    hosts = []
    for _, url in (*config.sources, *config.sources_file):
        target = _host_port(url)
        if target is not None:
            host, port = target
            hosts.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    return hosts


@functools.lru_cache(maxsize=1024)
def _engine_target(base_url: str) -> tuple[str, int] | None:
    """:func:`_host_port` of an engine's base URL: few distinct values, asked about often."""
    return _host_port(base_url)


def _shown(url: str) -> str:
    """A URL for messages: scheme, host and port only (no credentials, no query)."""
    target = _host_port(url)
    if target is None:
        return "an unusable URL"
    host, port = target
    return f"{urlsplit(url).scheme}://{f'[{host}]' if ':' in host else host}:{port}"


class GuardedEngineClient(EngineClient):
    """An :class:`EngineClient` that fetches only what :class:`UpstreamPolicy` permits.

    Redirects are followed by hand so that each hop is checked before it is requested.
    """

    def __init__(self, http: httpx.AsyncClient, policy: UpstreamPolicy) -> None:
        super().__init__(http)
        self._policy = policy
        self._client = http
        self.refused = 0

    async def open_session(self, engine: Engine, key_type: KeyType, key: str) -> Session:
        session = await super().open_session(engine, key_type, key)
        if self._policy.permits(session.playback_url):
            return session
        self.refused += 1
        log.warning(
            "engine %s gave a playback_url on %s: refused; stopping that session",
            engine.base_url,
            _shown(session.playback_url),
        )
        if session.command_url and self._policy.permits(session.command_url):
            try:
                await self.stop_session(session)
            except EngineError as exc:
                log.warning("engine %s: stop failed: %s", engine.base_url, exc.message)
        raise UpstreamRefused(
            f"engine {engine.base_url} gave a playback_url on {_shown(session.playback_url)}, "
            "which is not a known engine"
        )

    async def stop_session(self, session: Session) -> None:
        if session.command_url and not self._policy.permits(session.command_url):
            raise UpstreamRefused(f"command_url on {_shown(session.command_url)} refused")
        await super().stop_session(session)

    async def _get(self, url: str, headers: dict[str, str] | None = None) -> httpx.Response:
        for _ in range(MAX_REDIRECTS + 1):
            if not self._policy.permits(url):
                self.refused += 1
                raise UpstreamRefused(f"refused to fetch from {_shown(url)}: not a known engine")
            try:
                response = await self._client.get(url, headers=headers, follow_redirects=False)
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                raise EngineError(f"{url}: {type(exc).__name__}: {exc}") from exc
            if response.is_redirect and "location" in response.headers:
                try:
                    url = str(response.url.join(response.headers["location"]))
                except httpx.InvalidURL as exc:
                    raise EngineError(f"{url}: redirected to an invalid URL") from exc
                continue
            # A partial answer is what a request with a Range header asks for.
            if response.status_code != 200 and not (headers and response.status_code == 206):
                raise EngineError(
                    f"{url}: HTTP {response.status_code}", upstream_status=response.status_code
                )
            return response
        raise EngineError(f"{url}: more than {MAX_REDIRECTS} redirects")
