"""The guide: ``GET /epg.xml`` and ``/epg.xml.gz``, the channel list's XMLTV guide
(``TRIOPROXY_EPG_SOURCES``, filtered to the list's tvg-ids), and the ``url-tvg`` the M3U names.

Both answer from memory, with an ``ETag`` and ``Last-Modified`` (``If-None-Match`` and
``If-Modified-Since`` get ``304``), so apps that reload the guide often cost nothing. No source
configured: ``404``; configured, but no guide had yet (nothing cached, the first fetch still
running or failed): ``503`` with ``Retry-After``. With player keys, both need ``?key=`` as
``/playlist.m3u`` does (:mod:`.keys`: every path of :mod:`.urls` that is not open).
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime

from quart import Response, request

from ...channels.guide import GuideKeeper
from ...config import Config
from ...errors import NotFound, ProxyError
from .. import urls
from ..media import CORS

__all__ = ["GUIDE_TYPE", "GZIP_TYPE", "GuideNotReady", "GuideRoutes", "guide_url"]

GUIDE_TYPE = "application/xml; charset=utf-8"
GZIP_TYPE = "application/gzip"
MAX_AGE = 900
"""Seconds an app may keep the guide without asking again; then ``If-None-Match`` makes asking
cheap (guides change every few hours at most)."""
RETRY_AFTER = 30.0


class GuideNotReady(ProxyError):
    """A guide is configured, and none has been had yet."""

    status = 503
    code = "guide_not_ready"


def guide_url(base: str, config: Config, key: str = "") -> str | None:
    """What the M3U names as its guide (``url-tvg``): our ``/epg.xml`` under ``base`` when
    ``TRIOPROXY_EPG_SOURCES`` is set (with ``key``, ``&key=…`` or ``""``, as its query), else
    ``TRIOPROXY_EPG_URL`` (a guide elsewhere), else None."""
    if config.epg_sources:
        return urls.EPG.build(base) + key.replace("&", "?", 1)
    return config.epg_url


def _not_modified(etag: str, updated_at: float | None) -> bool:
    """Whether the request's validators say it has this guide already."""
    if "If-None-Match" in request.headers:
        tags = [tag.strip() for tag in request.headers["If-None-Match"].split(",")]
        return etag in tags or "*" in tags
    since = request.headers.get("If-Modified-Since")
    if since is None or updated_at is None:
        return False
    try:
        return int(updated_at) <= parsedate_to_datetime(since).timestamp()
    except (TypeError, ValueError):
        return False


class GuideRoutes:
    """``/epg.xml`` and ``/epg.xml.gz``, answered from ``keeper``."""

    def __init__(self, keeper: GuideKeeper) -> None:
        self.keeper = keeper

    async def epg(self) -> Response:
        return self._answer(gzipped=False)

    async def epg_gz(self) -> Response:
        return self._answer(gzipped=True)

    def _answer(self, gzipped: bool) -> Response:
        keeper = self.keeper
        if not keeper.configured:
            raise NotFound("no guide: set TRIOPROXY_EPG_SOURCES (and TRIOPROXY_CHANNELS_FILE)")
        guide = keeper.guide
        if guide is None:
            raise GuideNotReady(
                "the guide is not fetched yet; see /proxy/status (guide)", retry_after=RETRY_AFTER
            )
        etag = guide.etag if not gzipped else guide.etag[:-1] + '-gz"'
        headers = {"ETag": etag, "Cache-Control": f"public, max-age={MAX_AGE}", **CORS}
        if keeper.updated_at is not None:
            moment = datetime.fromtimestamp(int(keeper.updated_at), UTC)
            headers["Last-Modified"] = format_datetime(moment, usegmt=True)
        if _not_modified(etag, keeper.updated_at):
            return Response(b"", status=304, headers=headers)
        body = guide.gzipped if gzipped else guide.document
        return Response(body, content_type=GZIP_TYPE if gzipped else GUIDE_TYPE, headers=headers)
