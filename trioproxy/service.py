"""Run the service: the HTTP client, the registry and Hypercorn, torn down in reverse order.

The whole task tree of the proxy, and who cancels what (``README.md`` shows the same tree)::

    serve                                 until SIGINT/SIGTERM, then registry.shutdown()
    └─ HTTP client                        httpx.AsyncClient: opened first, closed last
       ├─ loop-lag sampler                wakes every second, records how late (/metrics)
       ├─ HTTP server (http/server.py)    accept loop: connections capped, heads timed, stalled
       │  │                               writers closed → per connection, the lean path
       │  │                               (http/lean: playlists and media from memory), which
       │  │                               hands it to Hypercorn's TCPServer at the first
       │  │                               request it does not answer
       │  └─ request handlers             find or start a channel and wait on it (a deadline);
       │                                  no upstream I/O of their own; a TS player is its
       │                                  own handler: it writes what the channel's TS writer
       │                                  could not, and is cut when it lags
       └─ registry.run                    one nursery for every channel; shutdown() hurries and
          │                               stops each one, then cancels what outlives the deadline
          ├─ guide refresher              TRIOPROXY_EPG_SOURCES: the cached guide read first, then
          │                               one fetch at a time when due, bounded in bytes and time
          ├─ engine directory             TRIOPROXY_ENGINES, or the orchestrator's /engines
          ├─ stream watcher               stops channels whose stream the orchestrator ended
          ├─ later engine stop            a session a closed channel left open: retried, logged
          ├─ cluster membership           with TRIOPROXY_REDIS_URL: a heartbeat every third of
          │                               a lease; reads the instances alive, engines' loads
          └─ channel <id>                 channel.run; stop() cancels its life scope
             ├─ event sender              stream_started, then stream_ended; outlives the life
             │                            scope, until delivered or the deadline teardown sets
             ├─ idle watchdog             no players (waiters count) for the grace period → stop()
             ├─ TS writer                 media read from an engine's MPEG-TS, gathered (≤ 150 ms)
             │                            and written to every TS player whose socket takes it
             └─ upstream session          one at a time (failover.SessionLoop): SessionEnded →
                                          the next session, or on to the channel's except*
                ├─ open                   shielded, bounded; task_status.started(session)
                ├─ reader                 engine MPEG-TS: one connection → segmenter → window
                │                         (TRIOPROXY_UPSTREAM_MODE=ts); else, or for a playlist,
                │                         the fetch loop: poller → downloads → commit
                │                         In a cluster, a channel another instance owns reads
                │                         that owner's MPEG-TS instead (a relay), the same way
                ├─ health check           stat_url and stall detection: raises, never calls back
                ├─ engine watch           an idle connection to the engine: closed, refused → raises
                └─ lease keeper           cluster owner: renews the channel's lease, notes the
                                          session beside it; another owner → raises (relay it)

Who cancels what, and the stop order:

- **The process**: the shutdown trigger returns → ``registry.shutdown()``: the guide refresher
  (a fetch in flight with it; a cache file half written is removed), the directory and the
  watcher are cancelled; every channel gets a deadline (``TRIOPROXY_SHUTDOWN_TIMEOUT``) for
  opening, stopping and event delivery, and is stopped; the registry's nursery is cancelled a
  second after that deadline as a backstop. The HTTP server closes its listeners and idle
  connections, gives requests in flight ``graceful_timeout`` (3 s, or half the shutdown
  timeout), then closes every socket still open; whatever still runs at
  ``TRIOPROXY_SHUTDOWN_TIMEOUT`` is cancelled, and the HTTP client closes last.
- **A channel** is stopped by ``registry.stop_channel`` (DELETE), its idle watchdog, the stream
  watcher, its upstream session's failure, or shutdown. Stopping removes it from the registry's
  map and cancels its life scope, and returns at once: a new request for the same id builds a
  new channel. Then, in order: the upstream session stops the engine session it opened
  (shielded, bounded by ``TRIOPROXY_STOP_TIMEOUT``); the channel's teardown queues
  ``stream_ended`` behind ``stream_started`` and closes the send side; the event sender drains
  what is queued until delivered or ``TRIOPROXY_EVENT_DRAIN_TIMEOUT``, and the channel's nursery
  closes. Nothing of the channel runs after that.
- **An upstream session** never calls back into its channel: readiness and the upstream's end
  reach the channel through the channel's own data (its window, ``Feed.ready``, ``Feed.ended``,
  ``task_status.started``); failures (a refused or slow open, a failing playlist or segments, an
  ended or stalled session) leave it as one ``SessionEnded``, caught by the channel's session loop
  (``SessionLoop`` in ``channels/failover.py``), which opens a new session in its place while
  the switch limit allows, or raises it on to the channel's one error boundary (``except*`` in
  ``Channel.run``), which ends the channel and starts the id's failure backoff.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.typing import ASGIFramework, ASGIReceiveCallable, ASGISendCallable, Scope

from ._version import __version__
from .channels.registry import Registry
from .cluster import Leases
from .config import Config
from .http.app import ProxyApp
from .http.connections import (
    ConnectionLimits,
    Connections,
    default_connection_cap,
    raise_open_file_limit,
)
from .http.guards import log_access
from .http.inflight import ForwardedLimit
from .http.lean.hot import LeanPath
from .http.server import serve_http
from .observability import sample_loop_lag
from .upstream.liveness import Connect
from .upstream.transport import UpstreamTransport

__all__ = [
    "Proxy",
    "Running",
    "connection_limits",
    "hypercorn_config",
    "proxy",
    "serve",
    "signal_trigger",
]

log = logging.getLogger(__name__)


def hypercorn_config(bind: str, *, shutdown_timeout: float = 10.0) -> HypercornConfig:
    hconfig = HypercornConfig()
    hconfig.bind = [bind]
    hconfig.accesslog = None
    hconfig.errorlog = logging.getLogger("hypercorn.error")  # through our handlers, once
    # Requests in flight at shutdown get this long, then their connections are closed; the
    # whole shutdown fits in ``shutdown_timeout``.
    hconfig.graceful_timeout = min(3.0, shutdown_timeout / 2)
    hconfig.shutdown_timeout = min(3.0, shutdown_timeout / 2)
    hconfig.keep_alive_timeout = 75.0
    hconfig.h11_max_incomplete_size = 16 * 1024
    hconfig.h2_max_header_list_size = 16 * 1024
    hconfig.include_server_header = False
    return hconfig


async def signal_trigger() -> None:
    """Return on the first SIGINT or SIGTERM: Hypercorn then shuts down gracefully."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("received %s: stopping", signal.Signals(signum).name)
            return


UPSTREAM_CONNECTIONS = 512
"""Upstream requests in flight at once, over every channel and event post."""
UPSTREAM_KEEPALIVE = 32
"""Idle connections kept open per origin (engine or orchestrator)."""
FD_RESERVE = UPSTREAM_CONNECTIONS + 64
"""Descriptors kept free of client connections: upstream requests, event posts, logs."""


def connection_limits(config: Config, fd_limit: int) -> ConnectionLimits:
    """The caps and timeouts of client connections under an open-file limit of ``fd_limit``."""
    cap = config.max_connections or default_connection_cap(fd_limit, FD_RESERVE)
    if cap >= fd_limit:
        log.warning("TRIOPROXY_MAX_CONNECTIONS=%d is not below the file limit %d", cap, fd_limit)
    return ConnectionLimits(
        max_connections=cap,
        per_address=config.max_connections_per_address,
        header_timeout=config.header_timeout,
        send_timeout=config.send_timeout,
        trusted_proxies=config.trusted_proxies,
        media_servers=config.media_servers,
    )


@asynccontextmanager
async def _client(given: httpx.AsyncClient | None) -> AsyncIterator[httpx.AsyncClient]:
    if given is not None:
        yield given
        return
    async with http_client() as client:
        yield client


def http_client() -> httpx.AsyncClient:
    # No httpx timeouts: every call runs under a Trio deadline set by its caller. One pool serves
    # every channel's downloads and every event post, with a pool per engine (see transport.py).
    per_origin = httpx.Limits(
        max_connections=UPSTREAM_CONNECTIONS, max_keepalive_connections=UPSTREAM_KEEPALIVE
    )
    return httpx.AsyncClient(
        timeout=None,
        transport=UpstreamTransport(UPSTREAM_CONNECTIONS, per_origin),
        headers={"User-Agent": f"trioproxy/{__version__}"},
    )


Heard = Callable[[str], None]
"""Told the path of every HTTP request the proxy answers (tests and benchmarks count them)."""


@dataclass(frozen=True, slots=True)
class Proxy:
    """The proxy assembled: its channels and the ASGI app players and operators reach."""

    config: Config
    registry: Registry
    app: ASGIFramework
    lean: LeanPath
    """The hot requests (playlists, media) answered on HTTP/1.1 connections of our own, before
    the app (:mod:`.http.lean`)."""


@dataclass(frozen=True, slots=True)
class Running:
    """A serving proxy: where it listens, and what it runs."""

    urls: list[str]
    """The bound addresses, ``http://host:port``."""
    proxy: Proxy

    @property
    def url(self) -> str:
        return self.urls[0]

    @property
    def registry(self) -> Registry:
        return self.proxy.registry


@asynccontextmanager
async def proxy(
    config: Config,
    http: httpx.AsyncClient,
    *,
    connect: Connect | None = trio.open_tcp_stream,
    heard: Heard | None = None,
    leases: Leases | None = None,
) -> AsyncIterator[Proxy]:
    """The one way the proxy is put together, by :func:`serve` and by every test and benchmark:
    the registry running (its channels, directory and watcher) and the app in front of it,
    until the block ends; then every channel is stopped and waited for.

    ``http`` reaches engines, sources and the orchestrator; ``connect`` opens the engine watch's
    connections (None: no engine watch); ``heard`` is told every request's path.
    """
    async with _store(config, leases) as store:
        registry = Registry(config, http, connect=connect, leases=store)
        async with _running(registry, config, heard) as assembled:
            yield assembled


@asynccontextmanager
async def _store(config: Config, given: Leases | None) -> AsyncIterator[Leases | None]:
    """The cluster's store: ``given``, else Redis at ``TRIOPROXY_REDIS_URL``, else none."""
    if given is not None or config.redis_url is None:
        yield given
        return
    from .cluster import redis  # coredis is imported by clusters only

    async with redis.connect(
        config.redis_url, prefix=config.redis_prefix, call_timeout=config.redis_timeout
    ) as store:
        yield store


@asynccontextmanager
async def _running(registry: Registry, config: Config, heard: Heard | None) -> AsyncIterator[Proxy]:
    forwarded = ForwardedLimit(
        ProxyApp(registry, config),
        config.max_connections_per_address,
        config.trusted_proxies,
        config.media_servers,
    )
    app: ASGIFramework = forwarded
    if heard is not None:
        app = _hearing(app, heard)
    lean = LeanPath(registry, config, forwarded, heard)
    async with trio.open_nursery() as nursery:
        await nursery.start(registry.run)
        try:
            yield Proxy(config, registry, app, lean)
        finally:
            registry.shutdown()


def _hearing(app: ASGIFramework, heard: Heard) -> ASGIFramework:
    async def hearing(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] == "http":
            heard(scope["path"])
        await app(scope, receive, send)

    return hearing


async def serve(
    config: Config,
    *,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = signal_trigger,
    http: httpx.AsyncClient | None = None,
    heard: Heard | None = None,
    task_status: trio.TaskStatus[Running] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until ``shutdown_trigger`` returns, then stop every channel and return within
    ``config.shutdown_timeout``.

    ``task_status.started`` gets the :class:`Running` proxy. ``http`` replaces the upstream
    client (closed by its owner); ``heard`` is told every request's path (see :func:`proxy`).
    """
    log_access(config)
    limits = connection_limits(config, raise_open_file_limit())
    log.info(
        "client connections: at most %d, %s per address",
        limits.max_connections,
        limits.per_address or "any number",
    )
    connections = Connections(limits)
    async with (
        _client(http) as client,
        proxy(config, client, heard=heard) as assembled,
        trio.open_nursery() as nursery,
    ):

        async def stop_channels_then_server() -> None:
            # Channels stop first: players still waiting on one are answered at once, so
            # Hypercorn's graceful shutdown has nothing left to wait for.
            if shutdown_trigger is None:
                await trio.sleep_forever()
            else:
                await shutdown_trigger()
            assembled.registry.shutdown()
            # Whatever is still running at the shutdown timeout is cancelled.
            nursery.cancel_scope.deadline = trio.current_time() + config.shutdown_timeout

        lag_sampler: trio.CancelScope = await nursery.start(sample_loop_lag)

        async def serve_then_stop(*, task_status: trio.TaskStatus[list[str]]) -> None:
            try:
                await serve_http(
                    assembled.app,
                    hypercorn_config(config.bind, shutdown_timeout=config.shutdown_timeout),
                    connections,
                    shutdown_trigger=stop_channels_then_server,
                    lean=assembled.lean,
                    task_status=task_status,
                )
            finally:
                lag_sampler.cancel()
                assembled.registry.shutdown()
                nursery.cancel_scope.deadline = min(
                    nursery.cancel_scope.deadline,
                    trio.current_time() + config.shutdown_timeout,
                )

        urls = await nursery.start(serve_then_stop)
        task_status.started(Running(urls, assembled))
    log.info("stopped")
