"""Stopping an engine session (``method=stop``) so that none is left open without a word.

A channel's teardown calls :func:`stop_session` once, bounded by its stop deadline
(``TRIOPROXY_STOP_TIMEOUT``): the channel closes in bounded time whatever the engine does. A
session still open after that is the registry's: :func:`stop_later` tries again after each of
:data:`LATER_DELAYS`, each attempt bounded by the same timeout; a final failure is logged as an
error naming the engine and the session. Every failed attempt is logged.
"""

from __future__ import annotations

import logging

import trio

from ..errors import EngineError
from ..upstream.engine import EngineClient, Session
from .upstreams import Upstream

__all__ = ["LATER_DELAYS", "LaterStops", "stop_later", "stop_session"]

log = logging.getLogger(__name__)

LATER_DELAYS = (2.0, 10.0, 30.0)
"""Seconds after the previous attempt ended before each later attempt by the registry."""


async def _attempt(client: EngineClient, upstream: Upstream, session: Session) -> str | None:
    """One stop; None when it worked, else why not."""
    try:
        await upstream.stop(client, session)
    except EngineError as exc:
        return exc.message
    return None


async def stop_session(
    name: str, client: EngineClient, upstream: Upstream, session: Session, deadline: float
) -> str | None:
    """Stop ``session`` by ``deadline``: None when stopped, else why not (logged).

    One attempt: the channel's teardown (and its ``stream_ended``) waits for it, so retries
    are left to :func:`stop_later`, after the channel has closed.
    """
    stopped, reason = False, "timed out"
    with trio.move_on_at(deadline):
        failure = await _attempt(client, upstream, session)
        stopped, reason = failure is None, failure or "failed"
    if stopped:
        log.info("channel %s: upstream session stopped", name)
        return None
    log.warning(
        "channel %s: engine stop of session %s on %s failed (%s); retrying later",
        name,
        session.playback_session_id,
        upstream.engine.base_url,
        reason,
    )
    return reason


async def stop_later(
    name: str, client: EngineClient, upstream: Upstream, session: Session, each: float
) -> None:
    """Try again to stop a session a channel left open, each attempt bounded by ``each``
    seconds; log an error when it never stops.

    Cancelled (at process shutdown), it logs the session it leaves open.
    """
    reason: str | None = "not tried"
    attempts = 0
    try:
        for delay in LATER_DELAYS:
            await trio.sleep(delay)
            attempts += 1
            reason = "timed out"
            with trio.move_on_after(each):
                failure = await _attempt(client, upstream, session)
                if failure is None:
                    log.info(
                        "channel %s: engine session %s on %s stopped on a later attempt",
                        name,
                        session.playback_session_id,
                        upstream.engine.base_url,
                    )
                    reason = None
                    return
                reason = failure
            log.warning(
                "channel %s: engine stop of session %s on %s failed again (%s)",
                name,
                session.playback_session_id,
                upstream.engine.base_url,
                reason,
            )
    except trio.Cancelled:
        reason = f"{reason}; the proxy is shutting down"
        raise
    finally:
        if reason is not None:
            log.error(
                "channel %s: engine session %s on %s left open: %d later stop(s) failed (%s)",
                name,
                session.playback_session_id,
                upstream.engine.base_url,
                attempts,
                reason,
            )


class LaterStops:
    """The later stops (:func:`stop_later`) of sessions closed channels left open, each a task
    in the nursery it is given (the registry's), each attempt bounded by ``each`` seconds. At
    process shutdown :meth:`give_up` cancels them: each logs the session it leaves open."""

    def __init__(self, each: float) -> None:
        self._each = each
        self._scopes: set[trio.CancelScope] = set()
        self._given_up = False

    def __len__(self) -> int:
        """Sessions still to be stopped."""
        return len(self._scopes)

    def start(
        self,
        nursery: trio.Nursery,
        name: str,
        upstream: Upstream,
        client: EngineClient,
        session: Session,
    ) -> None:
        scope = trio.CancelScope()
        if self._given_up:
            scope.cancel()  # no later at shutdown: it logs the session it leaves open
        self._scopes.add(scope)
        nursery.start_soon(self._run, scope, name, upstream, client, session)

    def give_up(self) -> None:
        self._given_up = True
        for scope in self._scopes:
            scope.cancel()

    async def _run(
        self,
        scope: trio.CancelScope,
        name: str,
        upstream: Upstream,
        client: EngineClient,
        session: Session,
    ) -> None:
        try:
            with scope:
                await stop_later(name, client, upstream, session, self._each)
        finally:
            self._scopes.discard(scope)
