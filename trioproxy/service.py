"""Run the service: the HTTP client, the registry and Hypercorn, torn down in reverse order."""

from __future__ import annotations

import logging
import signal
from collections.abc import Awaitable, Callable

import httpx
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

from ._version import __version__
from .channels.registry import Registry
from .config import Config
from .http.app import ProxyApp
from .upstream.transport import UpstreamTransport

__all__ = ["hypercorn_config", "serve", "signal_trigger"]

log = logging.getLogger(__name__)


def hypercorn_config(bind: str) -> HypercornConfig:
    hconfig = HypercornConfig()
    hconfig.bind = [bind]
    hconfig.accesslog = None
    hconfig.errorlog = logging.getLogger("hypercorn.error")  # through our handlers, once
    hconfig.graceful_timeout = 3.0
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


async def serve(
    config: Config,
    *,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = signal_trigger,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until ``shutdown_trigger`` returns, then stop every channel in the shutdown timeout.

    ``task_status.started`` gets the bound addresses (``http://host:port``).
    """
    async with http_client() as http:
        registry = Registry(config, http)

        async def stop_channels_then_server() -> None:
            # Channels stop first: players still waiting on one are answered at once, so
            # Hypercorn's graceful shutdown has nothing left to wait for.
            if shutdown_trigger is None:
                await trio.sleep_forever()
            else:
                await shutdown_trigger()
            registry.shutdown()

        async with trio.open_nursery() as nursery:
            await nursery.start(registry.run)
            try:
                await hypercorn_serve(
                    ProxyApp(registry, config),
                    hypercorn_config(config.bind),
                    shutdown_trigger=stop_channels_then_server,
                    task_status=task_status,
                )
            finally:
                registry.shutdown()
    log.info("stopped")
