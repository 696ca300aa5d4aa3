"""The stream routes: starting or joining a channel, its playlists, its media, the channel list.

MPEG-TS and media (segments, init sections, keys) are answered before these by the lean path
(:mod:`..media`); the handlers here serve them when the Quart app is used on its own.
"""

from __future__ import annotations

import secrets
from urllib.parse import quote

import trio
from quart import Response, request

from ...channels.answers import check_servable
from ...channels.join import Content, Rendition, Source, Want, join
from ...config.channels import ChannelEntry
from ...errors import NotFound
from ...hls.variants import render_master_playlist
from ...upstream.engine import KeyType
from ...upstream.resources import CONTENT_TYPES
from ...upstream.sources import RENDITION_NAME
from .. import urls
from ..ids import client_identity, parse_format, parse_stream_key
from ..m3u import M3U_TYPE, render_m3u
from ..media import CORS, IMMUTABLE, media_data, no_such_media
from ..playlists import media_playlist
from .context import PLAYLIST_TYPE, Context, error_response
from .guide import guide_url

__all__ = ["StreamRoutes"]


class StreamRoutes:
    def __init__(self, context: Context) -> None:
        self.context = context
        self.registry = context.registry
        self.config = context.config

    def redirect_to_playlist(self, want: Content | Source, key: str) -> Response:
        """Join ``want`` as a new player and send it to the channel's playlist URL, with a token
        of its own (so that reloads tell players apart) and ``key`` (``&key=…`` or ``""``)."""
        token = secrets.token_urlsafe(12)
        join(self.registry, want, self.context.player(client_identity(token, None, "", "")))
        if isinstance(want, Source):
            location = urls.SOURCE.build(request.root_path, name=want.name)
        else:
            location = urls.PLAYLIST.build(request.root_path, name=want.key)
        location += f"?client={token}{key}"
        if isinstance(want, Content) and want.key_type == "infohash":
            location += "&kind=infohash"
        return Response("", status=302, headers={"Location": location, **CORS})

    async def getstream(self) -> Response:
        key_type, key = parse_stream_key(request.args)
        if request.method == "HEAD":
            # A HEAD probes the URL: it must not open an engine session.
            return Response("", content_type=PLAYLIST_TYPE, headers=CORS)
        return self.redirect_to_playlist(Content(key_type, key), self.context.carried_key())

    async def playlist(self, name: str) -> Response:
        if RENDITION_NAME.fullmatch(name):
            return await self.rendition_playlist(name)
        if request.method == "HEAD":
            if self.registry.get(name) is None:
                raise NotFound(f"no running channel {name}")
            return Response("", content_type=PLAYLIST_TYPE, headers=CORS)
        kind: KeyType = "infohash" if request.args.get("kind") == "infohash" else "content_id"
        return await self.serve_playlist(Content(kind, name))

    async def source_playlist(self, name: str) -> Response:
        url = self.config.source_url(name)
        if url is None:
            raise NotFound(f"no source named {name!r}")
        if request.method == "HEAD":
            # A HEAD probes the URL: it must not start the channel.
            return Response("", content_type=PLAYLIST_TYPE, headers=CORS)
        if not request.args.get("client"):
            # As /ace/getstream does: a URL of its own per player.
            return self.redirect_to_playlist(Source(name, url), self.context.carried_key())
        return await self.serve_playlist(Source(name, url))

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
        match = RENDITION_NAME.fullmatch(name)
        parent = self.registry.get(match.group(1)) if match else None
        if match is None or parent is None:
            raise NotFound("no such rendition")
        if request.method == "HEAD":
            return Response("", content_type=PLAYLIST_TYPE, headers=CORS)
        return await self.serve_playlist(Rendition(parent, int(match.group(2))))

    async def serve_playlist(self, want: Want) -> Response:
        """The playlist of the channel ``want`` names, once its first segments are there (or
        an error); the request joins it as a player first.

        When the channel follows a variant with renditions of their own, a player first gets a
        master playlist naming our media playlist (``media=1``) and our rendition playlists.
        """
        who = self.context.player()
        channel = join(self.registry, want, who)
        if channel is None:
            raise NotFound("no such rendition")
        channel.touch(who.token, who.counted)
        if not channel.ready.is_set():
            with trio.move_on_after(self.config.hls_buffer_ready_timeout):
                await channel.wait_ready()
        check_servable(channel)
        channel.touch(who.token, who.counted)
        root = request.root_path
        name = channel.name
        variant = channel.variant
        if variant is not None and variant.separate_renditions and not request.args.get("media"):
            query = request.query_string.decode("latin-1")
            token = quote(request.args.get("client", ""), safe="")
            key = self.context.carried_key()

            def rendition_uri(index: int) -> str:
                return f"{urls.rendition_url(root, name, index)}?client={token}{key}"

            media = f"{request.path}?{query}&media=1" if query else f"{request.path}?media=1"
            master = render_master_playlist(variant, media, rendition_uri)
            return Response(
                master, content_type=PLAYLIST_TYPE, headers={"Cache-Control": "no-cache", **CORS}
            )
        body = media_playlist(channel, root)
        return Response(
            body, content_type=PLAYLIST_TYPE, headers={"Cache-Control": "no-cache", **CORS}
        )
