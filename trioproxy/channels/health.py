"""A channel's health check: is the engine session still alive, and does it still advance?

One task per upstream session, beside its fetch loop, ticking every ``TRIOPROXY_STAT_INTERVAL``:

- it reads the session's ``stat_url``; an answer ``{"response": null, "error": "..."}`` (after a
  stop the engine says "unknown playback session id") means the engine ended the session itself;
- it watches the channel's window: no new segment (and no gap) for ``TRIOPROXY_STALL_TIMEOUT``
  seconds since the session opened or since the last one means the stream stalled.

Either raises :class:`~trioproxy.errors.EngineError` naming the cause; it never calls back.
The last stat answer that carried one is kept in the feed (``Feed.engine_stat``), for
``/proxy/status`` and the metrics.
Reading ``stat_url`` may fail for a while (a busy engine): that alone ends nothing; the fetch
loop's own bounds handle a dead engine.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import trio

from ..errors import EngineError
from ..upstream.engine import EngineClient, Session
from ..upstream.stat import parse_stat
from .feed import Feed

__all__ = ["STAT_TIMEOUT", "session_ended_error", "watch_session"]

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


async def watch_session(
    engines: EngineClient,
    session: Session,
    feed: Feed,
    *,
    stat_interval: float,
    stall_timeout: float,
) -> None:
    """Run until cancelled; raise ``EngineError`` when the session dies or stalls."""
    window = feed.window
    progress_mark = (window.next_sequence, window.gaps)
    progress_at = trio.current_time()
    tick = min(stat_interval, stall_timeout)
    deadline = progress_at
    next_stat = progress_at + stat_interval
    while True:
        deadline += tick
        await trio.sleep_until(deadline)
        now = trio.current_time()
        mark = (window.next_sequence, window.gaps)
        if mark != progress_mark or feed.ended.is_set():
            progress_mark, progress_at = mark, now
        elif now - progress_at >= stall_timeout:
            raise EngineError(f"engine stream stalled: no new segment in {stall_timeout:g} s")
        if session.stat_url and now >= next_stat:
            next_stat += stat_interval
            payload = await _read_stat(engines, session.stat_url)
            stat = parse_stat(payload, trio.current_time())
            if stat is not None:
                feed.engine_stat = stat
            ended = session_ended_error(payload)
            if ended is not None:
                raise EngineError(f"engine ended the session ({ended})")
