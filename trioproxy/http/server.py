"""Hypercorn's trio worker, with our own accept loop in front of its connection handler.

``hypercorn.trio.serve`` builds its listeners and runs ``trio.serve_listeners`` itself, which
leaves no place to cap connections, time request heads or close stalled writers, and logs every
failed accept with a traceback. :func:`serve_http` runs the same pieces (lifespan, worker context,
``TCPServer`` per connection) over sockets Hypercorn binds, with each accepted connection admitted
by :class:`~trioproxy.http.connections.Connections` and wrapped in a guarded stream; its
handler — the lean path (:mod:`.lean`), which answers the hot HLS requests itself and hands a
connection to ``TCPServer`` at the first request it does not — runs inside
:func:`~trioproxy.http.direct.serving` (so a TS response may write its body to the socket
itself). At shutdown the listeners close, idle connections close, requests get
Hypercorn's ``graceful_timeout``, and then every socket still open is closed, so the server
returns in bounded time whatever clients do.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.statsd import StatsdLogger
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState, Framework, LifespanState
from hypercorn.utils import repr_socket_addr, wrap_app

from .connections import CAPACITY_ERRNOS, Connections, GuardedStream
from .direct import serving
from .lean.connection import Idle, serve_connection
from .lean.hot import LeanPath

__all__ = ["connection_handler", "serve_http"]

log = logging.getLogger(__name__)

ACCEPT_RETRY = 0.1
"""Seconds between accepts while out of file descriptors."""
LISTEN_BACKLOG = 0xFFFF
"""Connections the kernel completes and queues before we accept them (it caps this at
``net.core.somaxconn``), as Trio's and Go's listeners ask. Hypercorn's default (100) overflows
when hundreds of players arrive at once and the loop is busy for a moment: the kernel then drops
their SYNs, and each waits a retransmission (1 s, then 3 s, 7 s) for its first byte."""


async def serve_http(
    app: Framework,
    hconfig: HypercornConfig,
    connections: Connections,
    *,
    shutdown_trigger: Callable[[], Awaitable[None]],
    lean: LeanPath | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``hconfig.bind`` until ``shutdown_trigger`` returns; with ``lean``,
    each connection starts on the lean path (see :func:`connection_handler`).

    ``task_status.started`` gets the bound addresses (``http://host:port``).
    """
    hconfig.set_statsd_logger_class(StatsdLogger)
    asgi = wrap_app(app, hconfig.wsgi_max_body_size, None)
    lifespan_state: LifespanState = {}
    lifespan = Lifespan(asgi, hconfig, lifespan_state)
    context = WorkerContext(None)
    sockets = hconfig.create_sockets()
    listeners = []
    binds = []
    for sock in sockets.insecure_sockets:
        sock.listen(max(hconfig.backlog, LISTEN_BACKLOG))
        listeners.append(trio.SocketListener(trio.socket.from_stdlib_socket(sock)))
        binds.append(f"http://{repr_socket_addr(sock.family, sock.getsockname())}")
    handler, idle = connection_handler(asgi, hconfig, context, lifespan_state, lean)

    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        async with trio.open_nursery() as server_nursery:
            async with trio.open_nursery() as accept_nursery:
                for listener in listeners:
                    accept_nursery.start_soon(
                        _accept_loop, listener, connections, handler, server_nursery
                    )
                for bind in binds:
                    await hconfig.log.info(f"Running on {bind} (CTRL + C to quit)")
                task_status.started(binds)
                await shutdown_trigger()
                accept_nursery.cancel_scope.cancel()
            # Idle keep-alive connections close now; requests get the graceful timeout; then
            # every socket is closed, which also ends writes Hypercorn shields from cancellation.
            await context.terminated.set()
            if idle is not None:
                idle.close_all()
            deadline = trio.current_time() + hconfig.graceful_timeout
            server_nursery.cancel_scope.deadline = deadline
            lifespan_nursery.start_soon(_close_all_at, connections, deadline)
        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel()


def connection_handler(
    asgi: Any,
    hconfig: HypercornConfig,
    context: WorkerContext,
    lifespan_state: LifespanState,
    lean: LeanPath | None,
) -> tuple[Callable[[Any], Awaitable[None]], Idle | None]:
    """What serves each connection: Hypercorn's ``TCPServer`` over the app (``asgi``, wrapped
    by Hypercorn), or with ``lean``, the lean path first (:mod:`.lean.connection`), which hands
    a connection to Hypercorn at the first request it does not answer. The lean path's idle
    connections come with it (closed at shutdown). A server mounted under a ``root_path`` has
    no lean path: its URLs are the app's to route."""
    hypercorn = partial(TCPServer, asgi, hconfig, context, ConnectionState(lifespan_state.copy()))
    if lean is None or hconfig.root_path:
        return hypercorn, None
    idle = Idle(hconfig.keep_alive_timeout)
    return partial(serve_connection, lean, idle, hypercorn), idle


async def _close_all_at(connections: Connections, deadline: float) -> None:
    await trio.sleep_until(deadline)
    if len(connections):
        log.info("closing %d connections still open at shutdown", len(connections))
    connections.close_all()


async def _accept_loop(
    listener: trio.SocketListener,
    connections: Connections,
    handler: Callable[[Any], Awaitable[None]],
    nursery: trio.Nursery,
) -> None:
    async with listener:
        while True:
            try:
                raw = await listener.accept()
            except OSError as exc:
                if exc.errno not in CAPACITY_ERRNOS:
                    raise
                connections.accept_failed(exc)
                await trio.sleep(ACCEPT_RETRY)
                continue
            stream = connections.admit(raw)
            if stream is None:
                await connections.refuse(raw)
            else:
                nursery.start_soon(_run_connection, handler, stream)


async def _run_connection(handler: Callable[[Any], Awaitable[None]], stream: GuardedStream) -> None:
    """Serve one connection; whatever it raises ends it alone, never its siblings or the
    server (a client gone mid-answer quietly, anything else logged as the bug it is)."""
    try:
        with stream.scope, serving(stream):
            await handler(stream)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    except Exception:
        log.exception("a client connection failed")
    finally:
        await trio.aclose_forcefully(stream)
