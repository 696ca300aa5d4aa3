"""The Xtream Codes API: the proxy as an IPTV service for apps (TiviMate, IPTV Smarters, Kodi).

An app logs in with a server URL, a user name and a password (``TRIOPROXY_XTREAM_USERS``) and
reads ``player_api.php``: without ``action`` the account (``user_info``, ``auth`` 1) and the
server (``server_info``); ``get_live_categories`` the channel list's groups;
``get_live_streams`` its channels (of one ``category_id``, or all); ``get_short_epg`` a
channel's next programmes. Films and series: empty lists. ``get.php?type=m3u_plus`` is the same
list as an M3U, ``xmltv.php`` the guide (a redirect to ``/epg.xml``). Streams are
``/live/<user>/<password>/<stream_id>.ts`` (played by the lean path, as every MPEG-TS URL is)
and ``.m3u8`` (a redirect into the HLS URLs): through :func:`~trioproxy.channels.join.join`, as
every other way in.

A wrong login gets what apps show as wrong credentials: ``{"user_info": {"auth": 0}}`` with
status 200 from ``player_api.php``, a JSON 401 elsewhere; it opens nothing. Without logins
configured, every Xtream path answers 404.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from quart import Response, request

from ...errors import BadRequest, NotFound
from .. import urls
from ..lineup import Listed, check_login, xtream_want
from ..m3u import M3U_TYPE, render_m3u
from ..media import CORS
from .context import Context, json_response
from .streams import StreamRoutes

__all__ = ["ShortEpg", "XtreamRoutes"]

ShortEpg = Callable[[str, int], list[dict[str, Any]]]
"""A channel's next programmes from the guide, given its ``tvg-id`` and how many: ``title``,
``description``, ``start`` and ``stop`` (UTC epoch seconds), as
:meth:`~trioproxy.channels.guide.GuideKeeper.short_epg` gives them."""
EMPTY_ACTIONS = ("get_vod_categories", "get_vod_streams", "get_series_categories", "get_series")
DEFAULT_EPG_LIMIT = 4
MAX_EPG_LIMIT = 100


class XtreamRoutes:
    def __init__(
        self, context: Context, streams: StreamRoutes, short_epg: ShortEpg | None = None
    ) -> None:
        self.context = context
        self.streams = streams
        self.short_epg = short_epg
        """The guide's listings; None (no guide): every channel's listings are empty."""

    def _login(self) -> tuple[str, str]:
        """The request's login, checked: 404 without the Xtream API, 401 when it is wrong."""
        user, password = request.args.get("username"), request.args.get("password")
        check_login(self.context.logins, user, password)
        assert user is not None
        assert password is not None
        return user, password

    async def player_api(self) -> Response:
        logins = self.context.logins
        user, password = request.args.get("username"), request.args.get("password")
        if not logins.enabled:
            raise NotFound("no Xtream API here: set TRIOPROXY_XTREAM_USERS")
        if not logins.valid(user, password):
            return json_response({"user_info": {"auth": 0}})
        assert user is not None
        assert password is not None
        action = request.args.get("action", "")
        if not action:
            return json_response(self._account(user, password))
        if action == "get_live_categories":
            categories = self.context.lineup.categories
            rows = [
                {"category_id": str(number), "category_name": name, "parent_id": 0}
                for number, name in categories
            ]
            return json_response(rows)
        if action == "get_live_streams":
            return json_response(self._streams(request.args.get("category_id")))
        if action == "get_short_epg":
            return json_response({"epg_listings": self._short_epg()})
        if action in EMPTY_ACTIONS:
            return json_response([])
        raise BadRequest(f"unknown action {action[:40]!r}")

    def _account(self, user: str, password: str) -> dict[str, Any]:
        parts = urlsplit(self.context.base())
        scheme = parts.scheme
        port = str(parts.port or (443 if scheme == "https" else 80))
        now = time.time()
        registry, config = self.context.registry, self.context.config
        players = sum(len(channel.ts) for channel in registry.channels)
        return {
            "user_info": {
                "username": user,
                "password": password,
                "message": "",
                "auth": 1,
                "status": "Active",
                "exp_date": None,
                "is_trial": "0",
                "active_cons": str(players),
                "created_at": "0",
                "max_connections": str(config.max_players_per_channel),
                "allowed_output_formats": ["m3u8", "ts"],
            },
            "server_info": {
                "url": parts.hostname or "",
                "port": port if scheme == "http" else "80",
                "https_port": port if scheme == "https" else "443",
                "server_protocol": scheme,
                "rtmp_port": "0",
                "timezone": "UTC",
                "timestamp_now": int(now),
                "time_now": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now)),
            },
        }

    def _streams(self, category: str | None) -> list[dict[str, Any]]:
        channels = self.context.lineup.channels
        if category:
            channels = tuple(c for c in channels if str(c.category_id) == category.strip())
        return [_stream(channel) for channel in channels]

    def _short_epg(self) -> list[dict[str, Any]]:
        stream_id, limit = request.args.get("stream_id", ""), request.args.get("limit", "")
        if not stream_id.isdigit() or (limit and not limit.isdigit()):
            raise BadRequest("stream_id= and limit= must be whole numbers")
        channel = self.context.lineup.find(int(stream_id))
        if channel is None or self.short_epg is None or not channel.entry.tvg_id:
            return []
        count = min(int(limit or DEFAULT_EPG_LIMIT), MAX_EPG_LIMIT)
        programmes = self.short_epg(channel.entry.tvg_id, count)
        return [
            _listing(channel.entry.tvg_id, number, programme)
            for number, programme in enumerate(programmes, 1)
        ]

    async def m3u(self) -> Response:
        user, password = self._login()
        kind = request.args.get("type", "m3u_plus")
        if kind not in ("m3u", "m3u_plus"):
            raise BadRequest("type= must be m3u_plus or m3u")
        output = request.args.get("output", "ts")
        if output not in ("ts", "m3u8", "hls"):
            raise BadRequest("output= must be ts, m3u8 or hls")
        path = urls.XTREAM_TS if output == "ts" else urls.XTREAM_HLS
        base = self.context.base()
        channels = {channel.entry: channel for channel in self.context.lineup.channels}

        def url_of(entry: Any) -> str:
            stream_id = channels[entry].stream_id
            return path.build(base, user=user, password=password, stream_id=stream_id)

        body = render_m3u(channels, url_of, self.context.config.epg_url)
        return Response(body, content_type=M3U_TYPE, headers={"Cache-Control": "no-cache", **CORS})

    async def xmltv(self) -> Response:
        _, password = self._login()
        location = urls.EPG.build(request.root_path)
        location += self.context.key_param(password).replace("&", "?", 1)
        return Response("", status=302, headers={"Location": location, **CORS})

    async def live_hls(self, user: str, password: str, stream_id: str) -> Response:
        context = self.context
        want = xtream_want(
            context.lineup, context.logins, context.config, user, password, int(stream_id)
        )
        if request.method == "HEAD":
            return Response("", content_type="application/vnd.apple.mpegurl", headers=CORS)
        return self.streams.redirect_to_playlist(want, context.key_param(password))

    async def live_ts(self, user: str, password: str, stream_id: str) -> Response:
        # ProxyApp streams MPEG-TS before requests get here; the app on its own only probes.
        context = self.context
        xtream_want(context.lineup, context.logins, context.config, user, password, int(stream_id))
        if request.method == "HEAD":
            return Response("", content_type="video/mp2t", headers=CORS)
        raise NotFound("MPEG-TS streams are served by the proxy's ASGI entry point (ProxyApp)")


def _stream(channel: Listed) -> dict[str, Any]:
    entry = channel.entry
    return {
        "num": channel.number,
        "name": entry.name,
        "stream_type": "live",
        "stream_id": channel.stream_id,
        "stream_icon": entry.logo,
        "epg_channel_id": entry.tvg_id or None,
        "added": "0",
        "category_id": str(channel.category_id),
        "category_ids": [channel.category_id],
        "custom_sid": "",
        "tv_archive": 0,
        "direct_source": "",
        "tv_archive_duration": 0,
    }


def _listing(tvg_id: str, number: int, programme: dict[str, Any]) -> dict[str, Any]:
    """One programme as Xtream servers list it: title and description base64 (UTF-8), times
    as ``YYYY-MM-DD hh:mm:ss`` UTC and as epoch seconds, numbers as strings."""
    start = int(programme["start"])
    stop = int(programme["stop"]) if programme.get("stop") is not None else start

    def text(value: object) -> str:
        return base64.b64encode(str(value or "").encode("utf-8")).decode("ascii")

    def clock(epoch: int) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))

    return {
        "id": str(number),
        "epg_id": str(number),
        "title": text(programme.get("title")),
        "lang": "",
        "start": clock(start),
        "end": clock(stop),
        "description": text(programme.get("description")),
        "channel_id": tvg_id,
        "start_timestamp": str(start),
        "stop_timestamp": str(stop),
    }
