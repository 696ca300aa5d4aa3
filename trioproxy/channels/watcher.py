"""Streams the orchestrator ends, and content it refuses.

With ``ORCHESTRATOR_URL`` set, :class:`StreamWatcher` reads ``GET /streams?status=started`` and
``GET /looping-streams`` every ``TRIOPROXY_WATCH_INTERVAL`` seconds:

- a channel whose ``stream_started`` was delivered before the read began, and whose stream id the
  orchestrator no longer lists, was ended there (its loop detector, an operator): the channel is
  stopped, and sends no ``stream_ended`` of its own — the orchestrator already ended that stream,
  and a ``stream_ended`` for an id it no longer knows would end another stream on the engine;
- content listed by ``/looping-streams`` is refused with 422 until it is no longer listed.

An orchestrator that is down, slow, failing or answering garbage changes nothing: the last good
looping list stays, no channel is stopped, and the failure is logged once until it changes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import httpx
import trio

from ..errors import ChannelFailed, LoopingStream
from ..upstream.orchestrator import Orchestrator

if TYPE_CHECKING:
    from .channel import Channel

__all__ = ["READ_TIMEOUT", "StreamWatcher", "parse_looping", "parse_running"]

log = logging.getLogger(__name__)

READ_TIMEOUT = 10.0
"""Seconds one read of the orchestrator may take."""
_ENDED = "ended by the orchestrator"


def parse_running(payload: Any) -> set[str]:
    """Stream ids from ``GET /streams?status=started``; anything malformed raises ValueError."""
    if not isinstance(payload, list):
        raise ValueError("/streams did not answer a JSON list")
    ids = set()
    for row in payload:
        if not isinstance(row, dict) or not isinstance(row.get("id"), str):
            raise ValueError("/streams listed a stream without an id")
        ids.add(row["id"])
    return ids


def parse_looping(payload: Any) -> set[str]:
    """Content ids from ``GET /looping-streams`` (lower-cased); malformed raises ValueError."""
    if not isinstance(payload, dict) or not isinstance(payload.get("stream_ids"), list):
        raise ValueError('/looping-streams did not answer {"stream_ids": [...]}')
    return {str(item).lower() for item in payload["stream_ids"] if isinstance(item, str)}


class StreamWatcher:
    """Reads the orchestrator's running and looping streams; stops channels it ended."""

    def __init__(
        self,
        orchestrator: Orchestrator,
        interval: float,
        channels: Callable[[], Iterable[Channel]],
    ) -> None:
        self._orchestrator = orchestrator
        self._interval = interval
        self._channels = channels
        self.looping: frozenset[str] = frozenset()
        self._errors: dict[str, str] = {}
        self.reads = 0
        self.stopped = 0

    def check(self, key: str) -> None:
        """Refuse content the orchestrator lists as looping."""
        if key.lower() in self.looping:
            raise LoopingStream(f"{key} is listed as looping by the orchestrator")

    async def run(self) -> None:
        deadline = trio.current_time()
        while True:
            await self.poll()
            deadline += self._interval
            await trio.sleep_until(max(deadline, trio.current_time()))

    async def poll(self) -> None:
        """One read of both lists; acts on what could be read."""
        looping = await self._read("/looping-streams", parse_looping)
        if looping is not None:
            self.looping = frozenset(looping)
        # Only streams whose stream_started the orchestrator accepted before this read began
        # must be in its answer.
        established = [c for c in self._channels() if c.stream_established and not c.stopping]
        running = await self._read("/streams?status=started", parse_running)
        self.reads += 1
        if running is None:
            return
        for channel in established:
            if channel.stream_id not in running and not channel.stopping:
                log.info(
                    "channel %s: the orchestrator no longer lists stream %s; stopping",
                    channel.name,
                    channel.stream_id,
                )
                self.stopped += 1
                channel.report_end = False
                # As a failure: waiting players get a 502 saying so, and reloading players do not
                # restart the stream at once (TRIOPROXY_FAILURE_BACKOFF).
                channel.fail(ChannelFailed("the orchestrator ended this stream"), _ENDED)

    @property
    def last_error(self) -> str | None:
        return "; ".join(self._errors.values()) or None

    async def _read(self, path: str, parse: Callable[[Any], set[str]]) -> set[str] | None:
        """GET ``path`` and parse it; None (logged once per distinct error) when that fails."""
        error = f"no answer within {READ_TIMEOUT:g} s"
        with trio.move_on_after(READ_TIMEOUT):
            try:
                response = await self._orchestrator.get(path)
                if response.status_code in (401, 403):
                    # One error line per process for a wrong key, shared with event delivery.
                    self._orchestrator.auth_failed(response.status_code)
                    return None
                if response.status_code != 200:
                    raise ValueError(f"HTTP {response.status_code}")
                result = parse(response.json())
            except (httpx.HTTPError, ValueError) as exc:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                if self._errors.pop(path, None) is not None:
                    log.info("orchestrator %s readable again", path)
                return result
        error = f"{path}: {error}"
        if self._errors.get(path) != error:
            log.warning("cannot read the orchestrator's streams: %s", error)
        self._errors[path] = error
        return None

    def snapshot(self) -> dict[str, Any]:
        return {
            "looping": len(self.looping),
            "reads": self.reads,
            "stopped_by_orchestrator": self.stopped,
            "error": self.last_error,
        }
