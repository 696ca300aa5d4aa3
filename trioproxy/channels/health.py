"""A channel's health check: is the engine session still alive, and does it still advance?

One task per upstream session, beside its fetch loop, ticking every ``TRIOPROXY_STAT_INTERVAL``:

- it reads the session's ``stat_url``; an answer ``{"response": null, "error": "..."}`` (after a
  stop the engine says "unknown playback session id") means the engine ended the session itself;
- it watches the channel's window: no new segment (and no gap) since the session opened or
  since the last one, for ``TRIOPROXY_FAILOVER_STALL_TARGETS`` target durations (at most
  ``TRIOPROXY_STALL_TIMEOUT`` seconds), means the stream stalled.

Either raises :class:`~trioproxy.errors.EngineError` naming the cause; it never calls back. A
stall is blamed on the content or on the engine by one more ``stat_url`` read at its deadline:
an engine that still answers for the session (``prebuf``, no peers: a dead torrent) raises
:class:`~trioproxy.errors.ContentUnavailable`, one that does not answer, or no longer knows the
session, raises a plain ``EngineError``.
The last stat answer that carried one is kept in the feed (``Feed.engine_stat``), for
``/proxy/status`` and the metrics.
Reading ``stat_url`` may fail for a while (a busy engine): that alone ends nothing; the fetch
loop's own bounds handle a dead engine.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from typing import Any

import trio

from ..errors import ContentUnavailable, EngineError
from ..upstream.engine import EngineClient, Session
from ..upstream.stat import parse_stat
from .feed import Feed

__all__ = ["STAT_TIMEOUT", "session_ended_error", "stalled", "watch_session"]

log = logging.getLogger(__name__)

STAT_TIMEOUT = 5.0
"""Seconds one ``stat_url`` read may take."""


def session_ended_error(payload: Any) -> str | None:
    """The engine's error when a stat answer says the session is gone, else None."""
    if not isinstance(payload, dict):
        return None
    error = payload.get("error")
    if error and payload.get("response") is None:
        return str(error)[:200]
    return None


async def _read_stat(engines: EngineClient, url: str) -> Any:
    with trio.move_on_after(STAT_TIMEOUT):
        try:
            text, _ = await engines.get_text(url, "stat")
            return json.loads(text)
        except (EngineError, ValueError):
            return None
    return None


async def stalled(engines: EngineClient, session: Session, feed: Feed, limit: float) -> EngineError:
    """Why the session stalled, read from the engine now: it answers for the session (the
    content has nothing), it no longer knows it, or it does not answer at all (the engine):
    known at once, or after ``STAT_TIMEOUT`` at most."""
    stall = f"engine stream stalled: no new segment in {limit:g} s"
    if not session.stat_url:
        return EngineError(stall)
    payload = await _read_stat(engines, session.stat_url)
    ended = session_ended_error(payload)
    if ended is not None:
        return EngineError(f"engine ended the session ({ended})")
    stat = parse_stat(payload, trio.current_time())
    if stat is None:
        return EngineError(f"{stall}; the engine does not answer for the session")
    feed.engine_stat = stat
    said = ", ".join(
        f"{name} {value}"
        for name, value in (("status", stat.status), ("peers", stat.peers))
        if value is not None
    )
    return ContentUnavailable(f"{stall} ({said or 'the engine answers'})")


async def watch_session(
    engines: EngineClient,
    session: Session,
    feed: Feed,
    *,
    stat_interval: float,
    stall_limit: Callable[[bool], float],
) -> None:
    """Run until cancelled; raise ``EngineError`` when the session dies or stalls.

    ``stall_limit(started)`` is the seconds without progress that count as a stall, before
    (``started`` False: an engine may need long to start) or after the session's first segment;
    the stall is raised at that deadline, once :func:`stalled` has asked the engine why.
    """
    opened_at = trio.current_time()
    feed.advanced_at = opened_at
    next_stat = opened_at + stat_interval
    while True:
        started = feed.advanced_at > opened_at
        stall_at = max(feed.advanced_at, opened_at) + stall_limit(started)
        now = trio.current_time()
        if feed.ended.is_set():
            stall_at = math.inf
        elif now >= stall_at:
            raise await stalled(engines, session, feed, stall_limit(started))
        if session.stat_url and now >= next_stat:
            next_stat += stat_interval
            payload = await _read_stat(engines, session.stat_url)
            stat = parse_stat(payload, trio.current_time())
            if stat is not None:
                feed.engine_stat = stat
            ended = session_ended_error(payload)
            if ended is not None:
                raise EngineError(f"engine ended the session ({ended})")
            continue
        await trio.sleep_until(min(stall_at, next_stat if session.stat_url else math.inf))
