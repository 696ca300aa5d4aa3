"""Who serves each URL: the one table of the HTTP surface.

Each row names a path of :mod:`..urls` (which declares every path once), the handler that
answers it in the Quart app, and, where there is one, the lean path that answers it first,
without Quart's per-request cost:

- ``MEDIA``: always — segments, init sections and keys, from memory (:func:`..urls.match_media`):
  on HTTP/1.1 connections of our accept loop by :mod:`..lean` (no ASGI scope at all), else by
  :class:`~..media.MediaDispatcher` in front of the app;
- ``HLS``: a ``GET``/``HEAD`` asking for HLS, on HTTP/1.1 connections of our accept loop, by
  :mod:`..lean` with the app's own decisions (:mod:`..playlists`): the redirect to a channel's
  playlist and the playlists; the app answers them elsewhere (HTTP/2, the app on its own);
- ``TS``: when the request asks for MPEG-TS (``format=ts``, a ``.ts`` path, ``STREAM_MODE=TS``
  for ``/ace/getstream``): one long response per player (:func:`..urls.match_ts`), by
  :class:`~..media.MediaDispatcher`.

A connection on the lean path stays there while its requests are ``MEDIA`` or ``HLS`` ones
(and CORS preflights); at the first other request it moves to Hypercorn for good
(:mod:`..lean.connection`).

The handlers live in one module per group: :mod:`.operator` (health, status, metrics, the
control API), :mod:`.streams` (channels, playlists, media, the channel list), :mod:`.guide`
(the channel list's XMLTV guide), :mod:`.hdhomerun`
(media servers) and :mod:`.xtream` (IPTV apps); :mod:`.context` holds what they share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .. import urls
from .context import Context, Handler
from .guide import GuideRoutes
from .hdhomerun import TunerRoutes
from .operator import OperatorRoutes
from .streams import StreamRoutes
from .xtream import ShortEpg, XtreamRoutes

__all__ = ["HLS", "HLS_OR_TS", "MEDIA", "TS", "Lean", "Route", "ShortEpg", "route_table"]

Lean = Literal["media", "hls", "ts", "hls|ts"]
MEDIA: Lean = "media"
HLS: Lean = "hls"
TS: Lean = "ts"
HLS_OR_TS: Lean = "hls|ts"
"""``HLS`` when HLS is asked for, ``TS`` when MPEG-TS is."""


@dataclass(frozen=True, slots=True)
class Route:
    path: urls.Path
    handler: Handler
    group: str
    lean: Lean | None = None
    """The lean path that answers this path before the app: always (``MEDIA``), for HLS
    (``HLS``), when MPEG-TS is asked for (``TS``), or either (``HLS_OR_TS``)."""


def route_table(context: Context, *, short_epg: ShortEpg | None = None) -> tuple[Route, ...]:
    """Every route of the API. ``short_epg`` gives Xtream's ``get_short_epg`` its listings
    (by default, the guide's)."""
    operator = OperatorRoutes(context)
    streams = StreamRoutes(context)
    tuner = TunerRoutes(context)
    guide = GuideRoutes(context.registry.guide)
    xtream = XtreamRoutes(context, streams, short_epg or context.registry.guide.short_epg)
    return (
        # ---- the operator ----------------------------------------------------------------
        Route(urls.HEALTHZ, operator.healthz, "operator"),
        Route(urls.STATUS_PAGE, operator.page, "operator"),
        Route(urls.STATUS, operator.status, "operator"),
        Route(urls.METRICS, operator.metrics, "operator"),
        Route(urls.CHANNEL, operator.delete_channel, "operator"),
        # ---- streams: players and IPTV apps ----------------------------------------------
        Route(urls.GETSTREAM, streams.getstream, "streams", HLS_OR_TS),
        Route(urls.MANIFEST, streams.getstream, "streams", HLS_OR_TS),
        Route(urls.PLAYLIST, streams.playlist, "streams", HLS),
        Route(urls.SEGMENT, streams.media, "streams", MEDIA),
        Route(urls.RESOURCE, streams.media, "streams", MEDIA),
        Route(urls.SOURCE, streams.source_playlist, "streams", HLS_OR_TS),
        Route(urls.SOURCE_TS, streams.source_ts, "streams", TS),
        Route(urls.SOURCE_RENDITION, streams.source_rendition_playlist, "streams", HLS),
        Route(urls.SOURCE_SEGMENT, streams.media, "streams", MEDIA),
        Route(urls.SOURCE_RESOURCE, streams.media, "streams", MEDIA),
        Route(urls.M3U, streams.playlist_m3u, "streams"),
        Route(urls.EPG, guide.epg, "streams"),
        Route(urls.EPG_GZ, guide.epg_gz, "streams"),
        # ---- media servers: an HDHomeRun tuner -------------------------------------------
        Route(urls.DISCOVER, tuner.discover, "hdhomerun"),
        Route(urls.LINEUP_STATUS, tuner.lineup_status, "hdhomerun"),
        Route(urls.LINEUP, tuner.lineup, "hdhomerun"),
        Route(urls.LINEUP_M3U, tuner.lineup_m3u, "hdhomerun"),
        Route(urls.LINEUP_POST, tuner.lineup_post, "hdhomerun"),
        Route(urls.DEVICE_XML, tuner.device_xml, "hdhomerun"),
        # ---- IPTV apps: the Xtream Codes API ---------------------------------------------
        Route(urls.XTREAM_API, xtream.player_api, "xtream"),
        Route(urls.XTREAM_M3U, xtream.m3u, "xtream"),
        Route(urls.XTREAM_XMLTV, xtream.xmltv, "xtream"),
        Route(urls.XTREAM_TS, xtream.live_ts, "xtream", TS),
        Route(urls.XTREAM_HLS, xtream.live_hls, "xtream"),
        # ---- the cluster: an owner's output, for the other instances' relays -------------
        Route(urls.RELAY, streams.relay, "cluster", TS),
    )
