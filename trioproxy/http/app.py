"""The Quart app: the routes of the API, each translating HTTP into registry calls and back.

Every path comes from :mod:`.urls`. :class:`ProxyApp`, the ASGI entry point, puts the lean media
path (:mod:`.media`) in front of this app; the app answers media requests too, more slowly, when
used on its own.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

import trio
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope
from quart import Quart, Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import BaseConverter

from ..channels.answers import check_servable
from ..channels.join import Content, Rendition, Source, Visitor, Want, join
from ..channels.registry import Registry
from ..channels.status import registry_status
from ..config import Config
from ..config.channels import ChannelEntry
from ..errors import NotFound, ProxyError
from ..hls.variants import render_master_playlist
from ..upstream.engine import KeyType
from ..upstream.resources import CONTENT_TYPES
from ..upstream.sources import RENDITION_NAME
from . import urls
from .asgi import send_response
from .edge import believe_client, visitor
from .forwarded import FORWARDED_HEADERS, public_base
from .guards import Access
from .guide import guide_routes, guide_url
from .ids import client_identity, parse_format, parse_stream_key
from .keys import KEY_PARAM, PlayerKeys, key_query
from .m3u import M3U_TYPE, render_m3u
from .media import CORS, IMMUTABLE, MediaDispatcher, media_data, no_such_media
from .metrics import CONTENT_TYPE as METRICS_TYPE
from .metrics import MetricsPage
from .status_page import status_page

__all__ = ["PLAYLIST_TYPE", "ProxyApp", "create_app"]

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
_Handler = TypeVar("_Handler", bound=Callable[..., Any])
_CONVERTERS = {
    part: type(f"{part}_converter", (BaseConverter,), {"regex": regex})
    for part, regex in urls.PARTS.items()
}


def error_response(error: ProxyError) -> Response:
    response = Response(
        json.dumps(error.body()), status=error.status, content_type="application/json"
    )
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(max(1, round(error.retry_after)))
    response.headers.update(CORS)
    return response


RELAY_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")
"""Headers a reverse proxy adds to what it relays."""


def create_app(registry: Registry, config: Config) -> Quart:
    app = QuartTrio(__name__)
    # Quart would cut off any response body still being sent after 60 s; our waits have their
    # own deadlines instead.
    app.config["RESPONSE_TIMEOUT"] = None
    app.config["BODY_TIMEOUT"] = 30
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    app.url_map.converters.update(_CONVERTERS)
    access = Access.of(config)
    keys = PlayerKeys.of(config)
    app.register_blueprint(guide_routes(registry.guide))

    def carried_key() -> str:
        """``&key=…`` of the request's player key for the URLs it is handed (checked by
        :class:`ProxyApp` before the request got here), or ``""``."""
        if not keys.required:
            return ""
        query = key_query(request.args.get(KEY_PARAM))
        return f"&{query}" if query else ""

    def client() -> str:
        """The client's address, as ``TRIOPROXY_TRUSTED_PROXIES`` lets us believe it."""
        return believe_client(request.scope, config.trusted_proxies)

    def control_client() -> str:
        """The client as the control API judges it. A request relayed by a proxy we do not trust
        (it carries forwarding headers, yet its peer is not in ``TRIOPROXY_TRUSTED_PROXIES``) is
        never a local client, whatever its peer address: a reverse proxy on the same host would
        otherwise make every client on the network look like loopback."""
        address = client()
        relayed = any(name in request.headers for name in RELAY_HEADERS)
        if relayed and address == (request.remote_addr or ""):
            return "relayed by an untrusted proxy"
        return address

    def player(token: str | None = None) -> Visitor:
        """This request's player: its address as the caps count it, and its identity on the
        channel (``token``, else what the request says of itself: :func:`.ids.client_identity`)."""
        if token is None:
            token = client_identity(
                request.args.get("client"),
                request.headers.get("X-Playback-Session-Id"),
                client(),
                request.headers.get("User-Agent", ""),
            )
        return visitor(request.scope, token, config.trusted_proxies)

    @app.errorhandler(ProxyError)
    async def proxy_error(error: ProxyError) -> Response:
        return error_response(error)

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        code = {404: "not_found", 405: "method_not_allowed"}.get(status, "http_error")
        message = {
            404: f"nothing at {quote(request.path[:200])}",
            405: f"{request.method} is not allowed on {quote(request.path[:200])}",
        }.get(status, error.description or error.name)
        response = Response(
            json.dumps({"error": code, "message": message}),
            status=status,
            content_type="application/json",
        )
        response.headers.update(CORS)
        if isinstance(error, MethodNotAllowed) and error.valid_methods:
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response

    @app.before_request
    async def guard_state_changes() -> None:
        # Anything that can change state is the control API (see Access); GET, HEAD and OPTIONS
        # only read.
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            access.check_control(request.headers.get("Authorization"), control_client())

    def route(path: urls.Path) -> Callable[[_Handler], _Handler]:
        return app.route(path.rule, methods=list(path.methods))

    @route(urls.HEALTHZ)
    async def healthz() -> dict[str, Any]:
        return {"status": "ok"}

    @route(urls.STATUS_PAGE)
    async def page() -> Response:
        return status_page()

    @route(urls.STATUS)
    async def status() -> dict[str, Any]:
        detail = access.shows_details(request.headers.get("Authorization"), control_client())
        snapshot = registry_status(registry, detail=detail)
        if keys.required:
            # Media URLs rest on the incarnation being secret: only a keyed player's playlist
            # may reveal it.
            for channel in (*snapshot["channels"], *snapshot["closing"]):
                channel.pop("incarnation", None)
        return snapshot

    metrics_page = MetricsPage(registry)

    @route(urls.METRICS)
    async def metrics() -> Response:
        return Response(
            metrics_page.render(), content_type=METRICS_TYPE, headers={"Cache-Control": "no-store"}
        )

    @route(urls.CHANNEL)
    async def delete_channel(name: str) -> Response:
        # The key was checked by guard_state_changes, as for every state-changing request.
        if not registry.stop_channel(name, "stopped by request"):
            raise NotFound(f"no running channel {name}")
        return Response(
            json.dumps({"channel": name, "status": "stopping"}),
            status=202,
            content_type="application/json",
        )

    @route(urls.GETSTREAM)
    @route(urls.MANIFEST)
    async def getstream() -> Response:
        key_type, key = parse_stream_key(request.args)
        if request.method == "HEAD":
            # A HEAD probes the URL: it must not open an engine session.
            return Response("", content_type=PLAYLIST_TYPE, headers=CORS)
        token = secrets.token_urlsafe(12)
        join(registry, Content(key_type, key), player(client_identity(token, None, "", "")))
        location = urls.PLAYLIST.build(request.root_path, name=key)
        location += f"?client={token}{carried_key()}"
        if key_type == "infohash":
            location += "&kind=infohash"
        return Response("", status=302, headers={"Location": location, **CORS})

    @route(urls.PLAYLIST)
    async def playlist(name: str) -> Response:
        if RENDITION_NAME.fullmatch(name):
            return await rendition_playlist(name)
        if request.method == "HEAD":
            if registry.get(name) is None:
                raise NotFound(f"no running channel {name}")
            return Response("", content_type=PLAYLIST_TYPE, headers=CORS)
        kind: KeyType = "infohash" if request.args.get("kind") == "infohash" else "content_id"
        return await serve_playlist(Content(kind, name))

    @route(urls.SOURCE)
    async def source_playlist(name: str) -> Response:
        url = config.source_url(name)
        if url is None:
            raise NotFound(f"no source named {name!r}")
        if request.method == "HEAD":
            # A HEAD probes the URL: it must not start the channel.
            return Response("", content_type=PLAYLIST_TYPE, headers=CORS)
        if not request.args.get("client"):
            # As /ace/getstream does: a URL of its own per player, so reloads tell players apart.
            token = secrets.token_urlsafe(12)
            join(registry, Source(name, url), player(client_identity(token, None, "", "")))
            location = urls.SOURCE.build(request.root_path, name=name)
            location += f"?client={token}{carried_key()}"
            return Response("", status=302, headers={"Location": location, **CORS})
        return await serve_playlist(Source(name, url))

    @route(urls.M3U)
    async def playlist_m3u() -> Response:
        """The channel list, its URLs under the address the client used (or, behind a trusted
        proxy, the one it forwarded)."""
        if config.channels_file is None:
            raise NotFound("no channel list: set TRIOPROXY_CHANNELS_FILE")
        link_format = parse_format(request.args.get("format"), config.stream_mode)
        headers = request.headers
        base = public_base(
            request.scheme,
            headers.get("Host"),
            request.root_path,
            peer=request.remote_addr or "",
            forwarded={name: ", ".join(headers.getlist(name)) for name in FORWARDED_HEADERS},
            trusted=config.trusted_proxies,
        )

        # With player keys, each URL carries the key this list was asked with.
        key = carried_key()

        def url_of(channel: ChannelEntry) -> str:
            if channel.kind == "source":
                if link_format == "ts":
                    return urls.source_ts_url(base, channel.key) + key.replace("&", "?", 1)
                return urls.SOURCE.build(base, name=channel.key) + key.replace("&", "?", 1)
            return urls.stream_url(base, channel.kind, channel.key, link_format) + key

        body = render_m3u(config.channels_file, url_of, guide_url(base, config, key))
        return Response(body, content_type=M3U_TYPE, headers={"Cache-Control": "no-cache", **CORS})

    @route(urls.SOURCE_TS)
    async def source_ts(name: str) -> Response:
        # ProxyApp streams MPEG-TS before requests get here; the app on its own only probes.
        if config.source_url(name) is None:
            raise NotFound(f"no source named {name!r}")
        if request.method == "HEAD":
            return Response("", content_type="video/mp2t", headers=CORS)
        raise NotFound("MPEG-TS streams are served by the proxy's ASGI entry point (ProxyApp)")

    @route(urls.SOURCE_RENDITION)
    async def source_rendition_playlist(name: str) -> Response:
        return await rendition_playlist(urls.SOURCES.prefix + name)

    @route(urls.SEGMENT)
    @route(urls.RESOURCE)
    @route(urls.SOURCE_SEGMENT)
    @route(urls.SOURCE_RESOURCE)
    async def media(**_: str) -> Response:
        # ProxyApp answers these before they get here; this serves the app used on its own.
        wanted = urls.match_media(request.path)
        data = None if wanted is None else media_data(registry, wanted)
        if wanted is None or data is None:
            response = error_response(no_such_media(request.path))
            response.headers["Cache-Control"] = "no-store"
            return response
        headers = {"Cache-Control": IMMUTABLE, **CORS}
        return Response(data, content_type=CONTENT_TYPES[wanted.extension], headers=headers)

    async def rendition_playlist(name: str) -> Response:
        """The playlist of an audio or subtitle rendition of a running channel's variant."""
        match = RENDITION_NAME.fullmatch(name)
        parent = registry.get(match.group(1)) if match else None
        if match is None or parent is None:
            raise NotFound("no such rendition")
        if request.method == "HEAD":
            return Response("", content_type=PLAYLIST_TYPE, headers=CORS)
        return await serve_playlist(Rendition(parent, int(match.group(2))))

    async def serve_playlist(want: Want) -> Response:
        """The playlist of the channel ``want`` names, once its first segments are there (or
        an error); the request joins it as a player first.

        When the channel follows a variant with renditions of their own, a player first gets a
        master playlist naming our media playlist (``media=1``) and our rendition playlists.
        """
        who = player()
        channel = join(registry, want, who)
        if channel is None:
            raise NotFound("no such rendition")
        channel.touch(who.token, who.address)
        if not channel.ready.is_set():
            with trio.move_on_after(config.hls_buffer_ready_timeout):
                await channel.wait_ready()
        check_servable(channel)
        channel.touch(who.token, who.address)
        root = request.root_path
        name, incarnation = channel.name, channel.incarnation
        variant = channel.variant
        if variant is not None and variant.separate_renditions and not request.args.get("media"):
            query = request.query_string.decode("latin-1")
            token = quote(request.args.get("client", ""), safe="")

            key = carried_key()

            def rendition_uri(index: int) -> str:
                return f"{urls.rendition_url(root, name, index)}?client={token}{key}"

            media = f"{request.path}?{query}&media=1" if query else f"{request.path}?media=1"
            master = render_master_playlist(variant, media, rendition_uri)
            return Response(
                master, content_type=PLAYLIST_TYPE, headers={"Cache-Control": "no-cache", **CORS}
            )
        body = channel.render_playlist(
            lambda segment: urls.segment_url(
                root, name, incarnation, segment.sequence, segment.meta.extension
            ),
            lambda number: urls.resource_url(
                root, name, incarnation, channel.resources.filename(number)
            ),
        )
        return Response(
            body, content_type=PLAYLIST_TYPE, headers={"Cache-Control": "no-cache", **CORS}
        )

    return app


class ProxyApp(MediaDispatcher):
    """The ASGI entry point: the lean media path in front of the Quart app, and in front of
    both, the player-key check (:mod:`.keys`), the one place every stream request goes through."""

    def __init__(self, registry: Registry, config: Config) -> None:
        self.quart = create_app(registry, config)
        self.keys = PlayerKeys.of(config)
        super().__init__(registry, self.quart, config)

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "http":
            believe_client(scope, self.config.trusted_proxies)  # once, for every route
        if scope["type"] == "http" and scope["method"] != "OPTIONS" and self.keys.required:
            path = scope["path"].removeprefix(scope.get("root_path", ""))
            try:
                self.keys.check_query(path, scope["query_string"])
            except ProxyError as refused:
                await _refuse(send, refused, head=scope["method"] == "HEAD")
                return
        await super().__call__(scope, receive, send)


async def _refuse(send: ASGISendCallable, error: ProxyError, *, head: bool) -> None:
    body = json.dumps(error.body()).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"cache-control", b"no-store"),
        *((name.lower().encode(), value.encode()) for name, value in CORS.items()),
    ]
    await send_response(send, error.status, headers, body, head=head)
