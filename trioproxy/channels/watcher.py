"""Streams the orchestrator ends, and content it refuses.

With ``ORCHESTRATOR_URL`` set, :class:`StreamWatcher` first finds out which API the orchestrator
speaks (logged once), then reads its running streams (``GET /streams?status=started``) and its
looping list (``GET /looping-streams``) every ``TRIOPROXY_WATCH_INTERVAL`` seconds:

- a channel whose ``stream_started`` was delivered before the read began, and whose stream of
  that moment the orchestrator no longer lists, was ended there (its loop detector, an
  operator): the channel is
  stopped, and sends no ``stream_ended`` of its own — the orchestrator already ended that stream,
  and a ``stream_ended`` for an id it no longer knows would end another stream on the engine.
  A channel is looked up by the key that orchestrator names streams with: our stream id on v1,
  the content id on v2 (:class:`~trioproxy.upstream.orchestrator.RunningStreams`). A channel
  whose stream changed while the read ran (a failover) is left alone: the answer speaks of a
  stream it no longer plays, and its own ``stream_ended`` for that one is already queued;
- content listed by ``/looping-streams`` is refused with 422 until it is no longer listed; an
  orchestrator without that list (v2: 404) refuses nothing, and says so once.

An orchestrator that is down, slow, failing or answering garbage changes nothing: the last good
looping list stays, no channel is stopped, and the failure is logged once until it changes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import trio

from ..errors import ChannelFailed, LoopingStream
from ..upstream.orchestrator import (
    Orchestrator,
    OrchestratorAuthError,
    OrchestratorError,
    RunningStreams,
)

if TYPE_CHECKING:
    from .channel import Channel

__all__ = ["READ_TIMEOUT", "StreamWatcher", "still_listed"]

log = logging.getLogger(__name__)

READ_TIMEOUT = 10.0
"""Seconds one read of the orchestrator may take."""
_ENDED = "ended by the orchestrator"

T = TypeVar("T")


def still_listed(channel: Channel, stream_id: str | None, running: RunningStreams) -> bool:
    """Whether the orchestrator's running streams include ``channel``'s stream ``stream_id``."""
    return running.lists(stream_id=stream_id, content_id=channel.key)


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
        if self._orchestrator.api is None or not self._orchestrator.detected:
            with trio.move_on_after(READ_TIMEOUT):
                await self._orchestrator.detect()
        looping = await self._read("/looping-streams", self._orchestrator.looping_streams)
        if looping is not None:
            self.looping = looping
        # Only streams whose stream_started the orchestrator accepted before this read began
        # must be in its answer; each channel is judged by the stream it had then.
        established = [
            (channel, channel.stream_id)
            for channel in self._channels()
            if channel.stream_established and not channel.stopping
        ]
        running = await self._read("/streams", self._orchestrator.running_streams)
        self.reads += 1
        if running is None:
            return
        for channel, stream_id in established:
            if channel.stopping or channel.stream_id != stream_id:
                continue  # stopped or failed over while the list was read
            if not still_listed(channel, stream_id, running):
                log.info(
                    "channel %s: the orchestrator no longer lists stream %s; stopping",
                    channel.name,
                    stream_id if running.api == "v1" else channel.key,
                )
                self.stopped += 1
                channel.report_end = False
                # As a failure: waiting players get a 502 saying so, and reloading players do not
                # restart the stream at once (TRIOPROXY_FAILURE_BACKOFF).
                channel.fail(ChannelFailed("the orchestrator ended this stream"), _ENDED)

    @property
    def last_error(self) -> str | None:
        return "; ".join(self._errors.values()) or None

    async def _read(self, path: str, read: Callable[[], Awaitable[T]]) -> T | None:
        """One read of ``path``; None (logged once per distinct error) when it fails."""
        error = f"no answer within {READ_TIMEOUT:g} s"
        with trio.move_on_after(READ_TIMEOUT):
            try:
                result = await read()
            except OrchestratorAuthError:
                return None  # one error line per process, logged by the client
            except OrchestratorError as exc:
                error = str(exc) or type(exc).__name__
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
