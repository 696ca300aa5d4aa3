"""Where the proxy fetches from: the upstream hosts it may reach.

:class:`UpstreamPolicy` and :class:`GuardedEngineClient` make the proxy fetch only from the
  engines it knows and the hosts ``TRIOPROXY_ALLOW_UPSTREAM_HOSTS`` names: a ``playback_url``,
  a segment URI or a redirect pointing anywhere else is refused before any request is made.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

import httpx

from ..config import Config
from ..errors import EngineError, UpstreamRefused
from .engine import Engine, EngineClient, KeyType, Session

__all__ = ["GuardedEngineClient", "UpstreamPolicy", "source_hosts"]

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5


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
