"""The guide (XMLTV) of the channel list: fetched from ``TRIOPROXY_EPG_SOURCES`` on a schedule,
kept on disk, served at ``/epg.xml``.

:meth:`GuideKeeper.run` is one task (the registry runs it beside the engine directory): at
start-up it reads the cached guides (:mod:`.guide_cache`), so a restart serves the last good
guide before anything is fetched; then it fetches each source when it is due, one at a time,
each fetch bounded in time (``TRIOPROXY_EPG_TIMEOUT``) and in bytes
(``TRIOPROXY_EPG_MAX_BYTES``), and parsed as it arrives (:mod:`trioproxy.upstream.xmltv`). A
source is due ``TRIOPROXY_EPG_REFRESH`` after its last good fetch (a cached one counts from when
it was written); after a failure, 10 minutes later, then 20, 40, ... up to the refresh period.

A failed fetch changes nothing that is served: the source's last good guide stays, and the
failure shows in ``/proxy/status`` (``guide.sources[].error``) and the log.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import trio

from ..config import Config
from ..guide import Guide, GuideBuilder, GuidePart, render_part
from ..upstream.session import shown
from ..upstream.xmltv import GuideFetchFailed, GuideLimits, fetch_guide
from .guide_cache import GuideCache, state_directory

__all__ = ["DECODED_FACTOR", "MAX_KEPT", "RETRY_FIRST", "GuideKeeper"]

log = logging.getLogger(__name__)

MAX_KEPT = 64 << 20
"""Characters of XML kept of one source: its programmes of the listed channels (a week of
programmes of 200 channels is ~25 MB)."""
DECODED_FACTOR = 16
"""A compressed guide may decode to this many times ``TRIOPROXY_EPG_MAX_BYTES``."""
RETRY_FIRST = 600.0
"""Seconds before a failed source is tried again the first time; doubling after each failure."""


def _utc(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")


@dataclass
class _Source:
    """One source of ``TRIOPROXY_EPG_SOURCES`` and what became of its fetches."""

    url: str
    due: float = 0.0
    """When it is fetched next (``trio.current_time()``)."""
    part: GuidePart | None = None
    fetched_at: float | None = None
    """When the guide it serves was fetched (UTC epoch seconds), cached or not."""
    fetched_time: float | None = None
    """The same on Trio's clock; None for a guide read from the cache."""
    error: str | None = None
    failed_at: float | None = None
    failures: int = 0
    """Failed fetches since the last good one."""
    received: int = 0
    """Bytes of the last good fetch, as they arrived."""
    cached: bool = False
    """Its guide is on disk."""


class GuideKeeper:
    """The guide of the channel list; ``configured`` only with ``TRIOPROXY_EPG_SOURCES``."""

    def __init__(self, config: Config, http: httpx.AsyncClient) -> None:
        self._http = http
        self._order = [c.tvg_id for c in config.channels_file or () if c.tvg_id]
        self._sources = [_Source(url) for url in config.epg_sources]
        self._refresh = config.epg_refresh
        self._timeout = config.epg_timeout
        self._limits = GuideLimits(
            received=config.epg_max_bytes,
            decoded=config.epg_max_bytes * DECODED_FACTOR,
            kept=MAX_KEPT,
        )
        directory = state_directory(config.state_dir) if config.epg_sources else None
        self.cache = GuideCache(directory)
        self.guide: Guide | None = None
        """The guide served; None until one source's guide was had (fetched or cached)."""
        self.updated_at: float | None = None
        """When :attr:`guide` last changed (UTC epoch seconds)."""

    @property
    def configured(self) -> bool:
        return bool(self._sources)

    def short_epg(self, tvg_id: str, limit: int) -> list[dict[str, Any]]:
        """The next ``limit`` programmes of channel ``tvg_id`` (the one on air first):
        ``title``, ``description``, ``start`` and ``stop`` as UTC epoch seconds."""
        if self.guide is None:
            return []
        return self.guide.upcoming(tvg_id, limit, time.time())

    # ---- the task ---------------------------------------------------------------------------

    async def run(
        self, *, task_status: trio.TaskStatus[trio.CancelScope] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve the cached guides, then fetch each source when due, until cancelled through
        the scope ``task_status.started`` gets. Returns at once without sources."""
        with trio.CancelScope() as scope:
            if self._sources:
                self._read_cache()
            task_status.started(scope)
            while self._sources:
                source = min(self._sources, key=lambda s: s.due)
                await trio.sleep_until(source.due)
                await self._fetch(source)

    def _read_cache(self) -> None:
        now, wall = trio.current_time(), time.time()
        for source in self._sources:
            found = self.cache.load(source.url, self._order, self._limits.kept)
            if found is None:
                continue
            source.part, source.fetched_at = found
            source.cached = True
            # Due a refresh period after it was fetched: a restart does not fetch again.
            source.due = now + max(0.0, source.fetched_at + self._refresh - wall)
            log.info(
                "guide of %s: %d programmes from the cache of %s",
                shown(source.url),
                len(source.part.programmes),
                _utc(source.fetched_at),
            )
        fetched = [source.fetched_at for source in self._sources if source.fetched_at]
        if fetched:
            self.guide = GuideBuilder(self._parts(), self._order).guide()
            self.updated_at = max(fetched)  # not the restart: apps that have it get 304

    async def _fetch(self, source: _Source) -> None:
        started = trio.current_time()
        try:
            with trio.fail_after(self._timeout):
                part, received = await fetch_guide(
                    self._http, source.url, self._order, self._limits
                )
        except GuideFetchFailed as exc:
            self._failed(source, str(exc), started)
            return
        except trio.TooSlowError:
            message = (
                f"{shown(source.url)}: not read whole within {self._timeout:g} s "
                "(TRIOPROXY_EPG_TIMEOUT)"
            )
            self._failed(source, message, started)
            return
        except Exception as exc:  # a fault of ours in reading one guide never stops the proxy
            log.exception("guide of %s: unexpected failure", shown(source.url))
            self._failed(source, f"{shown(source.url)}: {type(exc).__name__}", started)
            return
        source.part, source.received, source.failures = part, received, 0
        source.fetched_at, source.fetched_time = time.time(), trio.current_time()
        source.error = source.failed_at = None
        source.due = started + self._refresh
        log.info(
            "guide of %s: %d programmes of %d listed channels (%d bytes read)",
            shown(source.url),
            len(part.programmes),
            len(part.channels),
            received,
        )
        await self._publish(source.fetched_at)
        source.cached = await self.cache.save(source.url, render_part(part), source.fetched_at)

    def _failed(self, source: _Source, message: str, started: float) -> None:
        source.error, source.failed_at = message, time.time()
        source.failures += 1
        delay = min(self._refresh, RETRY_FIRST * 2 ** min(source.failures - 1, 16))
        source.due = started + delay
        kept = "its last good guide stays" if source.part is not None else "no guide from it yet"
        log.warning("guide fetch failed: %s; %s; next try in %g s", message, kept, delay)

    def _parts(self) -> list[GuidePart]:
        return [source.part for source in self._sources if source.part is not None]

    async def _publish(self, fetched_at: float) -> None:
        """Build the guide of every source's last good part, a step at a time, and serve it;
        fetched at ``fetched_at`` if it changed."""
        builder = GuideBuilder(self._parts(), self._order)
        while not builder.step():
            await trio.lowlevel.checkpoint()
        guide = builder.guide()
        if self.guide is None or guide.etag != self.guide.etag:
            self.guide, self.updated_at = guide, fetched_at

    # ---- status -----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any] | None:
        """The guide for ``/proxy/status``; None when no source is configured."""
        if not self._sources:
            return None
        now = trio.current_time()
        guide = self.guide
        return {
            "channels": guide.channels if guide else 0,
            "programmes": guide.programmes if guide else 0,
            "bytes": len(guide.document) if guide else 0,
            "updated_at": _utc(self.updated_at),
            "cache_dir": None if self.cache.directory is None else str(self.cache.directory),
            "sources": [
                {
                    "url": source.url,
                    "fetched_at": _utc(source.fetched_at),
                    "fetched_seconds_ago": None
                    if source.fetched_time is None
                    else round(now - source.fetched_time, 3),
                    "error": source.error,
                    "failed_at": _utc(source.failed_at),
                    "failures": source.failures,
                    "next_fetch_seconds": round(max(0.0, source.due - now), 3),
                    "channels": len(source.part.channels) if source.part else 0,
                    "programmes": len(source.part.programmes) if source.part else 0,
                    "received_bytes": source.received,
                    "cached": source.cached,
                }
                for source in self._sources
            ],
        }
