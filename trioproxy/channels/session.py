"""An upstream session: one session on a channel's upstream, from open to stop.

A channel starts one with ``await nursery.start(session.run)`` and could replace it (its place
in the task tree is drawn once, in ``trioproxy.service``). :meth:`UpstreamSession.run` opens the
session (shielded, bounded by ``TRIOPROXY_SESSION_TIMEOUT``) and hands it to the channel with
``task_status.started``; then runs the fetch loop (``fetcher.py``; for a session opened as
MPEG-TS, the segmenting reader, ``segmenting.py``, which hands a playlist to the fetch loop), the
health check
(``health.py``) and, on an engine, the watch of its connection (``upstream/liveness.py``) side
by side until cancelled or failed; on the way out it stops what it opened
(shielded, bounded by ``TRIOPROXY_STOP_TIMEOUT``, failures retried: ``stops.py``); a session it
could not stop is left in :attr:`UpstreamSession.left_open` for the registry to try again. A
session that *failed* is not stopped on the way out (:attr:`UpstreamSession.failed`): its
channel stops it with :meth:`UpstreamSession.stop`, at once when the channel ends, beside the
next session's open when it fails over.

The session writes into the channel's :class:`~trioproxy.channels.feed.Feed` and never calls
back. Every failure (the open, the fetch loop, the health check) leaves :meth:`run` as one
:class:`SessionEnded`, for the channel's one error boundary.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import TypeVar

import trio

from ..config import Config
from ..errors import (
    ContentUnavailable,
    EngineError,
    OwnershipChanged,
    ProxyError,
    UpstreamRefused,
)
from ..upstream.engine import EngineClient, Session, host_port
from ..upstream.liveness import watch_engine
from .feed import Feed
from .fetcher import Fetcher
from .health import watch_session
from .memory import MemoryRefused
from .segmenting import SegmentingReader
from .stops import stop_session
from .upstreams import Upstream

__all__ = ["SessionEnded", "UpstreamSession", "first_leaf"]

log = logging.getLogger(__name__)

WATCH_PACE = 10.0
"""Seconds between the connects of an engine watch whose connections close at once, once they
have slowed down: one target duration, at most this (and this before one is known)."""


class SessionEnded(Exception):
    """The upstream session failed and is over."""

    def __init__(self, reason: str, error: ProxyError) -> None:
        super().__init__(reason)
        self.reason = reason
        """Why, as logged and sent as ``stream_ended``'s reason."""
        self.error = error
        """What players waiting on the channel are told."""

    @property
    def engine_failed(self) -> bool:
        """The engine failed (it is gone, lost the connection, answered 5xx or garbage, hung,
        forgot the session): another engine may do better, and this one's breaker opens. Not
        the content (:attr:`content_failed`), a setting of ours (a host the policy refuses) nor
        the memory budget."""
        ours = (UpstreamRefused, MemoryRefused, ContentUnavailable, OwnershipChanged)
        return isinstance(self.error, EngineError) and not isinstance(self.error, ours)

    @property
    def moved(self) -> bool:
        """Another instance of the cluster owns the channel now: relay it (no breaker)."""
        return isinstance(self.error, OwnershipChanged)

    @property
    def content_failed(self) -> bool:
        """The engine answered and has nothing for the content (it refused the open, or the
        session stalled while the engine kept answering): nothing against the engine."""
        return isinstance(self.error, ContentUnavailable)


E = TypeVar("E", bound=BaseException)


def first_leaf(group: BaseExceptionGroup[E]) -> E:
    """The first exception in ``group``, however deeply nested."""
    found: BaseException = group
    while isinstance(found, BaseExceptionGroup):
        found = found.exceptions[0]
    return found  # type: ignore[return-value]


class UpstreamSession:
    """Opens ``upstream``, fills ``feed`` from it and watches it; stops it on the way out."""

    def __init__(
        self,
        *,
        name: str,
        upstream: Upstream,
        client: EngineClient,
        feed: Feed,
        config: Config,
        hurry_deadline: float = math.inf,
        watches: Sequence[Callable[[Session], Awaitable[None]]] = (),
    ) -> None:
        self._name = name
        self._watches = watches
        self._upstream = upstream
        self._client = client
        self._feed = feed
        self._config = config
        self._hurry_deadline = hurry_deadline
        self._open_scope = trio.CancelScope(shield=True)
        self.session: Session | None = None
        """The session once opened (stopped again when :meth:`run` ends)."""
        self.left_open: str | None = None
        """Why the session is still open after :meth:`stop` (every stop failed), if it is."""
        self.failed = False
        """:meth:`run` ended with :class:`SessionEnded` after the open: :meth:`stop` is the
        caller's to call."""
        self._stopped = False
        self.fetcher = Fetcher(name, config, client, feed)
        self.reader = SegmentingReader(name, config, client, feed)

    def hurry(self, deadline: float) -> None:
        """At process shutdown: finish opening and stopping by ``deadline``."""
        self._hurry_deadline = min(self._hurry_deadline, deadline)
        self._open_scope.deadline = min(self._open_scope.deadline, deadline)

    async def run(
        self, *, task_status: trio.TaskStatus[Session] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Open, then fetch and watch until cancelled or failed; stop what was opened."""
        try:
            session = await self._open()
            await trio.lowlevel.checkpoint()  # a stop that came while opening takes effect here
            task_status.started(session)
            try:
                async with trio.open_nursery() as nursery:
                    if session.kind == "ts":
                        nursery.start_soon(self.reader.run, session, self.fetcher.run)
                    else:
                        self._feed.on_live(None)
                        nursery.start_soon(self.fetcher.run, session.playback_url)
                    nursery.start_soon(
                        partial(
                            watch_session,
                            self._client,
                            session,
                            self._feed,
                            stat_interval=self._config.stat_interval,
                            stall_limit=self._stall_limit,
                        )
                    )
                    for watch in self._watches:  # the engine listed, the cluster lease kept
                        nursery.start_soon(watch, session)
                    self._watch_engine(nursery, session)
            except* EngineError as group:
                self.failed = True
                error = first_leaf(group)
                raise SessionEnded(error.message, error) from group
        finally:
            if not self.failed:
                await self.stop()

    def _stall_limit(self, started: bool) -> float:
        """Before the session's first segment ``TRIOPROXY_STALL_TIMEOUT``; then, with a target
        duration known, ``TRIOPROXY_FAILOVER_STALL_TARGETS`` of them (at most that)."""
        config = self._config
        if not started:
            return config.stall_timeout
        return self._feed.limit(config.failover_stall_targets, config.stall_timeout)

    def _watch_engine(self, nursery: trio.Nursery, session: Session) -> None:
        """Hold an idle connection to the engine (``liveness.py``) when the playlist comes from
        the engine itself: its death is heard at once, not at the next reload."""
        connect = self._client.connect
        engine = self._upstream.engine_load
        if connect is None or engine is None:
            return
        target = host_port(session.playback_url)
        if target is None or target != host_port(engine.base_url):
            return
        nursery.start_soon(
            partial(
                watch_engine,
                connect,
                *target,
                pace=lambda: self._feed.limit(1, WATCH_PACE),
                name=engine.base_url,
            )
        )

    async def _open(self) -> Session:
        timeout = self._config.session_timeout
        self._open_scope.deadline = min(self._hurry_deadline, trio.current_time() + timeout)
        with self._open_scope:
            try:
                self.session = await self._upstream.open(self._client)
            except EngineError as exc:
                raise SessionEnded(f"engine session failed: {exc.message}", exc) from exc
        if self.session is None:
            error = EngineError(f"engine did not open a session in {timeout:g} s")
            raise SessionEnded("engine session timed out", error)
        log.info(
            "channel %s: session %s open on %s",
            self._name,
            self.session.playback_session_id,
            self._upstream.engine.base_url,
        )
        return self.session

    async def stop(self) -> None:
        """Stop the session, if one was opened (shielded, bounded by ``TRIOPROXY_STOP_TIMEOUT``);
        one that would not stop is left in :attr:`left_open`."""
        if self.session is None or self._stopped:
            return
        self._stopped = True
        with trio.CancelScope(shield=True):
            deadline = min(self._hurry_deadline, trio.current_time() + self._config.stop_timeout)
            self.left_open = await stop_session(
                self._name, self._client, self._upstream, self.session, deadline
            )
