"""Where a channel may fetch from: its own upstream's host, and what the operator allows.

:class:`UpstreamPolicy` holds what is allowed everywhere (``TRIOPROXY_ALLOW_UPSTREAM_HOSTS``) and
the read bounds; each channel gets a view of it, a :class:`GuardedEngineClient` that reaches only
the hosts that channel's upstream may use:

- ``policy.for_engine(engine)``: that engine (its session's playlist, segments, stat and stop),
  plus the allowed hosts. Not the other engines: a playlist cannot reach into another engine.
- ``policy.for_source(url)``: the source's own host and port, plus the allowed hosts.

Whatever the host, media and playlists are never fetched from the engine's API
(:data:`ENGINE_API_PATHS`): a playlist listing ``/ace/manifest.m3u8?...`` or ``/ace/cmd/...`` as
segments would open or stop engine sessions. A refused URL (or redirect hop) raises
:class:`~trioproxy.errors.UpstreamRefused` before any request is made.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

import httpx

from ..config import Config
from ..errors import EngineError, UpstreamRefused
from ..observability.metrics import SOURCE_LABEL, UpstreamMetrics, engine_label
from .engine import (
    Engine,
    EngineClient,
    KeyType,
    ReadLimits,
    Session,
    StreamKind,
    host_port,
    shown,
)
from .liveness import Connect

__all__ = [
    "ENGINE_API_PATHS",
    "GuardedEngineClient",
    "UpstreamPolicy",
    "is_engine_api",
    "read_limits",
]

log = logging.getLogger(__name__)

ENGINE_API_PATHS = ("/ace/manifest.m3u8", "/ace/getstream", "/ace/cmd", "/server/api", "/webui")
"""The engine's control API (CONTRACT §1): session open (HLS and TS), stop and other commands,
the service API and the web UI. Segments live elsewhere (``/ace/c/<id>/12.ts``)."""

_ALLOW_SETTING = "TRIOPROXY_ALLOW_UPSTREAM_HOSTS"


def read_limits(config: Config) -> ReadLimits:
    """The read bounds the settings ask for."""
    return ReadLimits(
        playlist=config.max_playlist_bytes,
        segment=config.max_segment_bytes,
        init=config.max_init_bytes,
        key=config.max_key_bytes,
    )


def is_engine_api(url: str) -> bool:
    """Whether ``url``'s path names the engine's API, however it is spelled (case,
    percent-encoding, ``//``, ``.`` and ``..`` segments)."""
    try:
        path = unquote(urlsplit(url).path).lower()
    except ValueError:
        return True
    path = posixpath.normpath("/" + path.replace("\\", "/"))
    path = "/" + path.lstrip("/")
    return any(path == api or path.startswith(api + "/") for api in ENGINE_API_PATHS)


class _Hosts:
    """``host``, ``host:port``, ``[v6]``, ``[v6]:port`` or ``*`` items, matched against URLs."""

    def __init__(self, items: Iterable[str] = ()) -> None:
        self.any = False
        self.hosts: set[str] = set()
        self.host_ports: set[tuple[str, int]] = set()
        for item in items:
            item = item.strip().lower()
            if item == "*":
                self.any = True
            elif item.startswith("[") and "]:" in item:
                host, _, port = item[1:].partition("]:")
                self.host_ports.add((host, int(port)))
            elif item.startswith("["):
                self.hosts.add(item.strip("[]"))
            elif item.count(":") == 1 and item.split(":")[1].isdigit():
                host, _, port = item.partition(":")
                self.host_ports.add((host, int(port)))
            elif item:
                self.hosts.add(item)

    def match(self, target: tuple[str, int]) -> bool:
        return self.any or target[0] in self.hosts or target in self.host_ports


def _as_item(target: tuple[str, int]) -> str:
    host, port = target
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class UpstreamPolicy:
    """What every channel may fetch from (``allow``), the read bounds, and the per-channel views.

    ``refused`` counts the URLs refused over all views.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        allow: Iterable[str] = (),
        limits: ReadLimits | None = None,
        connect: Connect | None = None,
    ) -> None:
        self._http = http
        self.connect = connect
        """Opens the connections that watch engines (``liveness.py``); None: no watch. Read by
        each client as it is made."""
        self._allowed = _Hosts(allow)
        self.limits = limits or ReadLimits()
        self.refused = 0

    @classmethod
    def from_config(
        cls, http: httpx.AsyncClient, config: Config, connect: Connect | None = None
    ) -> UpstreamPolicy:
        """``connect`` opens the connections that watch engines (when ``TRIOPROXY_FAILOVER_WATCH``
        is on)."""
        watch = connect if config.failover_watch else None
        return cls(http, config.allow_upstream_hosts, read_limits(config), watch)

    def permits(self, url: str) -> bool:
        """Whether any channel may fetch ``url``: an allowed host, not the engine's API."""
        target = host_port(url)
        return target is not None and self._allowed.match(target) and not is_engine_api(url)

    def for_engine(self, engine: Engine) -> GuardedEngineClient:
        """The client of a channel on ``engine``: that engine and the allowed hosts."""
        own = host_port(engine.base_url)
        metrics = UpstreamMetrics(engine_label(*own) if own else "other")
        return GuardedEngineClient(self, [own] if own else [], f"engine {engine.base_url}", metrics)

    def for_source(self, url: str) -> GuardedEngineClient:
        """The client of a channel of the source at ``url``: its host and the allowed hosts."""
        own = host_port(url)
        return GuardedEngineClient(
            self, [own] if own else [], f"the source on {shown(url)}", UpstreamMetrics(SOURCE_LABEL)
        )

    def _refusal(self, url: str, own: frozenset[tuple[str, int]], whose: str) -> str | None:
        """Why the view ``own`` may not fetch ``url``; None when it may."""
        target = host_port(url)
        if target is None:
            return "refused to fetch an unusable URL"
        if is_engine_api(url):
            path = urlsplit(url).path[:80]
            return (
                f"refused to fetch {shown(url)}{path}: the engine's API is never fetched as "
                "a playlist or media"
            )
        if target in own or self._allowed.match(target):
            return None
        return (
            f"refused to fetch from {shown(url)}: not {whose} nor a host in {_ALLOW_SETTING}; "
            f"add {_as_item(target)} to {_ALLOW_SETTING} to allow it"
        )


class GuardedEngineClient(EngineClient):
    """An :class:`EngineClient` that fetches only from its channel's hosts (see the module).

    Made by :meth:`UpstreamPolicy.for_engine` and :meth:`UpstreamPolicy.for_source`.
    Redirects are followed by hand so that each hop is checked before it is requested.
    """

    def __init__(
        self,
        policy: UpstreamPolicy,
        own: Iterable[tuple[str, int]],
        whose: str,
        metrics: UpstreamMetrics | None = None,
    ) -> None:
        super().__init__(policy._http, policy.limits, metrics, policy.connect)
        self._policy = policy
        self._own = frozenset(own)
        self._whose = whose
        self.refused = 0

    def permits(self, url: str) -> bool:
        return self._policy._refusal(url, self._own, self._whose) is None

    def check(self, url: str) -> None:
        refusal = self._policy._refusal(url, self._own, self._whose)
        if refusal is not None:
            self.refused += 1
            self._policy.refused += 1
            raise UpstreamRefused(refusal)

    async def open_session(
        self, engine: Engine, key_type: KeyType, key: str, kind: StreamKind = "hls"
    ) -> Session:
        session = await super().open_session(engine, key_type, key, kind)
        refusal = self._policy._refusal(session.playback_url, self._own, self._whose)
        if refusal is None:
            return session
        self.refused += 1
        self._policy.refused += 1
        log.warning(
            "engine %s gave a playback_url on %s: refused; stopping that session",
            engine.base_url,
            shown(session.playback_url),
        )
        if session.command_url and self._stoppable(session.command_url):
            try:
                await self.stop_session(session)
            except EngineError as exc:
                log.warning("engine %s: stop failed: %s", engine.base_url, exc.message)
        raise UpstreamRefused(f"engine {engine.base_url} gave a playback_url: {refusal}")

    async def stop_session(self, session: Session) -> None:
        if session.command_url and not self._stoppable(session.command_url):
            raise UpstreamRefused(f"command_url on {shown(session.command_url)} refused")
        await super().stop_session(session)

    def _stoppable(self, command_url: str) -> bool:
        """The session's own ``command_url`` (``/ace/cmd/...``) is the one API URL we call."""
        target = host_port(command_url)
        return target is not None and (target in self._own or self._policy._allowed.match(target))
