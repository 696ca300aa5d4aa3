"""The stream routes: starting or joining a channel, its playlists, its media, the channel list.

What a player's HLS request is answered with is decided in :mod:`..playlists`, for these routes
and the lean HTTP/1.1 path (:mod:`..lean`) alike. MPEG-TS and media (segments, init sections,
keys) are answered before these by the lean ASGI dispatcher (:mod:`..media`); the handlers here
serve them when the Quart app is used on its own.
"""

from __future__ import annotations

from quart import Response, request

from ...channels.join import Content, Source
from ...config.channels import ChannelEntry
from ...errors import NotFound
from ...upstream.resources import CONTENT_TYPES
from .. import urls
from ..ids import parse_format
from ..m3u import M3U_TYPE, render_m3u
from ..media import CORS, IMMUTABLE, media_data, no_such_media
from ..playlists import Playlists
from .context import Context, error_response, reply_response
from .guide import guide_url

__all__ = ["StreamRoutes"]


class StreamRoutes:
    """The Quart side of :class:`~..playlists.Playlists`: each request read, the reply sent."""

    def __init__(self, context: Context) -> None:
        self.context = context
        self.registry = context.registry
        self.config = context.config
        self.playlists = Playlists(context.registry, context.config)

    def redirect_to_playlist(self, want: Content | Source, key: str) -> Response:
        """Join ``want`` as a new player and send it to the channel's playlist URL."""
        return reply_response(self.playlists.redirect_to_playlist(self.context.asked(), want, key))

    async def getstream(self) -> Response:
        return reply_response(self.playlists.getstream(self.context.asked()))

    async def playlist(self, name: str) -> Response:
        return reply_response(await self.playlists.playlist(self.context.asked(), name))

    async def source_playlist(self, name: str) -> Response:
        return reply_response(await self.playlists.source_playlist(self.context.asked(), name))

    async def playlist_m3u(self) -> Response:
        """The channel list, its URLs under the address the client used (or, behind a trusted
        proxy, the one it forwarded)."""
        config = self.config
        if config.channels_file is None:
            raise NotFound("no channel list: set TRIOPROXY_CHANNELS_FILE")
        link_format = parse_format(request.args.get("format"), config.stream_mode)
        base = self.context.base()

        # With player keys, each URL carries the key this list was asked with.
        key = self.context.carried_key()

        def url_of(channel: ChannelEntry) -> str:
            if channel.kind == "source":
                if link_format == "ts":
                    return urls.source_ts_url(base, channel.key) + key.replace("&", "?", 1)
                return urls.SOURCE.build(base, name=channel.key) + key.replace("&", "?", 1)
            return urls.stream_url(base, channel.kind, channel.key, link_format) + key

        body = render_m3u(config.channels_file, url_of, guide_url(base, config, key))
        return Response(body, content_type=M3U_TYPE, headers={"Cache-Control": "no-cache", **CORS})

    async def source_ts(self, name: str) -> Response:
        # ProxyApp streams MPEG-TS before requests get here; the app on its own only probes.
        if self.config.source_url(name) is None:
            raise NotFound(f"no source named {name!r}")
        if request.method == "HEAD":
            return Response("", content_type="video/mp2t", headers=CORS)
        raise NotFound("MPEG-TS streams are served by the proxy's ASGI entry point (ProxyApp)")

    async def relay(self, **_: str) -> Response:
        # ProxyApp streams every relay before requests get here.
        raise NotFound("relays are served by the proxy's ASGI entry point (ProxyApp)")

    async def source_rendition_playlist(self, name: str) -> Response:
        return await self.rendition_playlist(urls.SOURCES.prefix + name)

    async def media(self, **_: str) -> Response:
        # ProxyApp answers these before they get here; this serves the app used on its own.
        wanted = urls.match_media(request.path)
        data = None if wanted is None else media_data(self.registry, wanted)
        if wanted is None or data is None:
            response = error_response(no_such_media(request.path))
            response.headers["Cache-Control"] = "no-store"
            return response
        headers = {"Cache-Control": IMMUTABLE, **CORS}
        return Response(data, content_type=CONTENT_TYPES[wanted.extension], headers=headers)

    async def rendition_playlist(self, name: str) -> Response:
        """The playlist of an audio or subtitle rendition of a running channel's variant."""
        asked = self.context.asked()
        return reply_response(await self.playlists.rendition_playlist(asked, name))
