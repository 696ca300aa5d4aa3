"""The channel registry: one nursery for every channel, and the map from id to running channel."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import trio

from ..config import Config
from ..errors import ChannelFailed, NoEngineAvailable
from ..upstream.engine import EngineClient, KeyType
from ..upstream.orchestrator import Orchestrator
from ..upstream.policy import UpstreamPolicy
from ..upstream.sources import SOURCE_PREFIX, rendition_name, source_engine
from .admission import Admission, opening_counts
from .channel import Channel
from .directory import EngineDirectory
from .watcher import StreamWatcher

__all__ = ["Registry"]

log = logging.getLogger(__name__)


class Registry:
    """Starts, finds and stops channels. :meth:`run` owns the nursery every channel runs in.

    The HTTP client is passed in and must outlive :meth:`run` (the caller opens it around it).
    """

    def __init__(self, config: Config, http: httpx.AsyncClient) -> None:
        self.config = config
        static = config.engines
        if not static and config.orchestrator_url is None:
            static = ("http://127.0.0.1:6878",)
        self.directory = EngineDirectory(
            static=static,
            max_streams_per_engine=config.max_streams_per_engine,
            orchestrator_url=config.orchestrator_url,
            http=http,
            refresh_interval=config.engine_refresh_interval,
        )
        self.policy = UpstreamPolicy.from_config(http, config)
        self.admission = Admission(config)
        self.orchestrator = (
            Orchestrator(http, config.orchestrator_url, config.api_key)
            if config.orchestrator_url
            else None
        )
        self.watcher = (
            StreamWatcher(
                self.orchestrator, config.watch_interval, lambda: list(self._channels.values())
            )
            if self.orchestrator is not None
            else None
        )
        self._channels: dict[str, Channel] = {}
        self._closing: set[Channel] = set()
        self._failed_until: dict[str, tuple[float, str]] = {}
        """Ids whose channel failed upstream: refused until then, with the failure's message."""
        self._nursery: trio.Nursery | None = None
        self._shutdown = trio.Event()
        self.started_total = 0

    # ---- lifecycle --------------------------------------------------------------------------

    async def run(
        self, *, task_status: trio.TaskStatus[Registry] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve channels until :meth:`shutdown`, then stop them all; return when they are gone."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            directory_scope = trio.CancelScope()
            nursery.start_soon(self._run_directory, directory_scope)
            watcher_scope = trio.CancelScope()
            if self.watcher is not None:
                nursery.start_soon(self._run_watcher, watcher_scope)
            task_status.started(self)
            await self._shutdown.wait()
            directory_scope.cancel()
            watcher_scope.cancel()
            deadline = trio.current_time() + self.config.shutdown_timeout
            for channel in [*self._channels.values(), *self._closing]:
                channel.hurry(deadline)
                channel.stop("proxy shutdown")
            # A backstop: whatever a channel still runs past the deadline is cancelled.
            nursery.cancel_scope.deadline = deadline + 1.0
        self._nursery = None

    async def _run_directory(self, scope: trio.CancelScope) -> None:
        with scope:
            await self.directory.run()

    async def _run_watcher(self, scope: trio.CancelScope) -> None:
        assert self.watcher is not None
        with scope:
            await self.watcher.run()

    def shutdown(self) -> None:
        self._shutdown.set()

    # ---- channels ---------------------------------------------------------------------------

    def get(self, name: str) -> Channel | None:
        return self._channels.get(name)

    def find(self, name: str, incarnation: str) -> Channel | None:
        """The running or closing channel with this incarnation (segments stay servable)."""
        channel = self._channels.get(name)
        if channel is not None and channel.incarnation == incarnation:
            return channel
        for closing in self._closing:
            if closing.name == name and closing.incarnation == incarnation:
                return closing
        return None

    def get_or_start_source(self, source: str, url: str) -> Channel:
        """The channel of the configured source ``source``, started now if there is none."""
        return self.get_or_start("url", url, name=SOURCE_PREFIX + source)

    def get_or_start_rendition(self, parent: Channel, index: int) -> Channel | None:
        """The channel of rendition ``index`` of ``parent``'s variant (an alternative audio or
        subtitle playlist), started now if there is none. It sends no events of its own."""
        variant = parent.variant
        if variant is None or not 0 <= index < len(variant.separate_renditions):
            return None
        uri = variant.separate_renditions[index].uri
        assert uri is not None
        name = rendition_name(parent.name, index)
        return self.get_or_start("url", uri, name=name, events=False, upstream=parent.engines)

    def get_or_start(
        self,
        key_type: KeyType,
        key: str,
        *,
        name: str | None = None,
        events: bool = True,
        upstream: EngineClient | None = None,
    ) -> Channel:
        """The channel for ``key``, started now if there is none. Never waits.

        ``upstream`` is the client the channel fetches with, which reaches only its hosts;
        by default, the engine's (``policy.for_engine``) or the URL's (``policy.for_source``).
        """
        name = name or key
        channel = self._channels.get(name)
        if channel is not None:
            return channel
        if self._nursery is None or self._shutdown.is_set():
            raise NoEngineAvailable("the proxy is shutting down", retry_after=5)
        now = trio.current_time()
        failed = self._failed_until.get(name)
        if failed is not None:
            until, message = failed
            if now < until:
                raise ChannelFailed(
                    f"{message} (retry in {until - now:.0f} s)", retry_after=until - now
                )
            del self._failed_until[name]
        if self.watcher is not None and key_type != "url":
            self.watcher.check(key)
        self.admission.check_channel(len(self._channels))
        if key_type == "url":
            # A source is no engine stream: it takes no engine's capacity.
            engine = source_engine(key)
        else:
            opening = opening_counts([*self._channels.values(), *self._closing])
            accepted = self.directory.acquire_if(self.admission.engine_free(opening))
            if accepted is None:
                raise self.admission.refuse_opening()
            engine = accepted
        if upstream is None:
            upstream = (
                self.policy.for_source(key) if key_type == "url" else self.policy.for_engine(engine)
            )
        channel = Channel(
            name=name,
            key_type=key_type,
            key=key,
            engine=engine,
            config=self.config,
            engines=upstream,
            orchestrator=self.orchestrator if events else None,
            on_stop=self._forget,
            on_closed=self._closed,
        )
        self._channels[name] = channel
        self.started_total += 1
        log.info("channel %s: starting on %s", name, engine.base_url)
        self._nursery.start_soon(channel.run, name=f"channel {name}")
        return channel

    def stop_channel(self, name: str, reason: str = "stopped") -> bool:
        """Stop a channel now. Returns at once; False when there is no such running channel."""
        channel = self._channels.get(name)
        if channel is None:
            return False
        channel.stop(reason)
        return True

    def _forget(self, channel: Channel) -> None:
        if self._channels.get(channel.name) is channel:
            del self._channels[channel.name]
            # Back off from the moment the channel fails, not when its teardown ends: a player
            # reloading in between would otherwise open a new engine session at once.
            self._back_off(channel)
        if not channel.closed.is_set():
            self._closing.add(channel)

    def _closed(self, channel: Channel) -> None:
        self._forget(channel)
        self._closing.discard(channel)
        if channel.key_type != "url":
            self.directory.release(channel.engine)

    def _back_off(self, channel: Channel) -> None:
        if channel.failure is None or self.config.failure_backoff <= 0:
            return
        now = trio.current_time()
        for name, (until, _) in list(self._failed_until.items()):
            if until <= now:
                del self._failed_until[name]
        until = now + self.config.failure_backoff
        self._failed_until[channel.name] = (until, channel.failure.message)

    # ---- status -----------------------------------------------------------------------------

    @property
    def channels(self) -> list[Channel]:
        return list(self._channels.values())

    def snapshot(self) -> dict[str, Any]:
        orchestrator = self.orchestrator
        return {
            "channels": [c.snapshot() for c in self._channels.values()],
            "closing": [c.snapshot() for c in self._closing],
            "engines": self.directory.snapshot(),
            "engine_list_error": self.directory.last_refresh_error,
            "events": None
            if orchestrator is None
            else {
                "orchestrator": orchestrator.base_url,
                "delivered": orchestrator.delivered,
                "dropped": orchestrator.dropped,
            },
            "channels_started": self.started_total,
            "limits": self.admission.snapshot(
                len(self._channels), opening_counts([*self._channels.values(), *self._closing])
            ),
            "orchestrator_streams": self.watcher.snapshot() if self.watcher else None,
            "config": {
                "max_streams_per_engine": self.config.max_streams_per_engine,
                "hls_window_size": self.config.hls_window_size,
                "hls_max_segments": self.config.hls_max_segments,
                "hls_initial_segments": self.config.hls_initial_segments,
                "proxy_grace_period": self.config.proxy_grace_period,
                "hls_client_idle_timeout": self.config.hls_client_idle_timeout,
            },
        }
