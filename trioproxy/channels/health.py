"""A channel's health check: is the engine session still alive, and does it still advance?

One task per channel, in the channel's life scope, ticking every ``TRIOPROXY_STAT_INTERVAL``:

- it reads the session's ``stat_url``; an answer ``{"response": null, "error": "..."}`` (after a
  stop the engine says "unknown playback session id") means the engine ended the session itself;
- it watches the channel's window: no new segment (and no gap) for ``TRIOPROXY_STALL_TIMEOUT``
  seconds since the session opened or since the last one means the stream stalled.

Either ends the channel with a reason naming the cause. Reading ``stat_url`` may fail for a while
(a busy engine): that alone never ends a channel; the fetch loop's own bounds handle a dead engine.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import trio

from ..errors import EngineError
from ..upstream.engine import EngineClient, Session

if TYPE_CHECKING:
    from .channel import Channel

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
            text, _ = await engines.get_text(url)
            return json.loads(text)
        except (EngineError, ValueError):
            return None
    return None


async def watch_session(
    channel: Channel,
    engines: EngineClient,
    session: Session,
    *,
    stat_interval: float,
    stall_timeout: float,
) -> None:
    """Run until the channel's scope is cancelled; end the channel if its session dies or stalls."""
    progress_mark = (channel.window.next_sequence, channel.window.gaps)
    progress_at = trio.current_time()
    tick = min(stat_interval, stall_timeout)
    deadline = progress_at
    next_stat = progress_at + stat_interval
    while True:
        deadline += tick
        await trio.sleep_until(deadline)
        now = trio.current_time()
        mark = (channel.window.next_sequence, channel.window.gaps)
        if mark != progress_mark or channel.endlist:
            progress_mark, progress_at = mark, now
        elif now - progress_at >= stall_timeout:
            message = f"engine stream stalled: no new segment in {stall_timeout:g} s"
            channel.fail(EngineError(message), message)
            return
        if session.stat_url and now >= next_stat:
            next_stat += stat_interval
            payload = await _read_stat(engines, session.stat_url)
            ended = session_ended_error(payload)
            if ended is not None:
                message = f"engine ended the session ({ended})"
                channel.fail(EngineError(message), message)
                return
