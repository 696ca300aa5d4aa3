"""Hear an engine die when it dies: one idle TCP connection to it, held open.

A killed engine process (a crash, a stopped container) closes its connections, and its port
refuses new ones. The fetch loop would learn that at its next playlist reload, up to a target
duration later. :func:`watch_engine` learns it at once: it holds one idle connection to the
engine, sending nothing on it, and when the engine closes it, connects again at once. A refused
connect means nothing listens there any more: it raises :class:`~trioproxy.errors.EngineError`.
A connect that succeeds is the next connection watched.

- An engine that closes idle connections after a while costs one connect per close.
- One that closes them as soon as they open is connected to ever less often: 50 ms after such a
  close, doubling for each close in a row, then at most once every ``pace()`` seconds. That
  first short pause also covers a dying process whose connections close just before its
  listening socket does.
- A connect that times out, or fails for another reason (no route, a name that does not
  resolve), proves nothing: the fetch loop's own bounds find a host that went silent. The watch
  tries again after ``pace()`` seconds.
- A hung engine (connections accepted, nothing answered) keeps the connection open; the fetch
  loop's deadlines find it.

Whatever the engine sends on the connection (a ``408`` before an idle close, say) is read and
dropped.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import NoReturn

import trio

from ..errors import EngineError

__all__ = ["CONNECT_TIMEOUT", "Connect", "refused", "refused_in_chain", "watch_engine"]

Connect = Callable[[str, int], Awaitable[trio.abc.Stream]]
"""Opens a TCP connection to ``(host, port)``: :func:`trio.open_tcp_stream` in the service."""

CONNECT_TIMEOUT = 5.0
"""Seconds one connect may take before it counts as proving nothing."""
FIRST_PAUSE = 0.05
"""Seconds before connecting again after a connection that closed sooner than ``pace()``."""


def refused(exc: BaseException) -> bool:
    """The connect was refused, at every address tried: nothing listens there."""
    if isinstance(exc, ConnectionRefusedError):
        return True
    cause = exc.__cause__  # trio.open_tcp_stream: an OSError from a group of the attempts'
    if isinstance(cause, BaseExceptionGroup):
        leaves = cause.exceptions
        return bool(leaves) and all(refused(leaf) for leaf in leaves)
    return False


def refused_in_chain(exc: BaseException) -> bool:
    """A refused connect (:func:`refused`) is what ``exc`` was raised from, at any depth: an
    HTTP client's error wraps the connect's (httpx names it as the cause of its own, httpcore
    as its argument and context). A name that does not resolve, a TLS failure, no route or no
    free descriptor is not a refusal."""
    pending, seen = [exc], set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if refused(current):
            return True
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]
        pending += [arg for arg in current.args if isinstance(arg, BaseException)]
    return False


async def _until_closed(stream: trio.abc.Stream) -> None:
    try:
        while await stream.receive_some(4096):
            pass
    except trio.BrokenResourceError:
        pass  # reset


async def watch_engine(
    connect: Connect, host: str, port: int, *, pace: Callable[[], float], name: str
) -> NoReturn:
    """Run until cancelled; raise ``EngineError`` once the engine at ``host:port`` has closed
    the watched connection and refuses a new one (see the module). ``name`` is the engine as
    the error names it."""
    quick = 0
    """Connections in a row that closed sooner than ``pace()``."""
    while True:
        began = trio.current_time()
        stream: trio.abc.Stream | None = None
        with trio.move_on_after(CONNECT_TIMEOUT):
            try:
                stream = await connect(host, port)
            except OSError as exc:
                if refused(exc):
                    raise EngineError(
                        f"engine {name} is gone: it closed its connection and refuses new ones"
                    ) from exc
        if stream is None:  # timed out or failed otherwise: proves nothing
            await trio.sleep_until(began + pace())
            continue
        async with stream:
            await _until_closed(stream)
        closed_at = trio.current_time()
        if closed_at - began >= pace():
            quick = 0
            continue  # a connection that lasted: connect again at once
        await trio.sleep_until(closed_at + min(pace(), FIRST_PAUSE * 2**quick))
        quick += 1
