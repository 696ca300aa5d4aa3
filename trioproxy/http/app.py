"""The HTTP layer: translate requests into registry calls and back. No upstream I/O happens here.

Segments, the hot path, are answered by a small ASGI dispatcher in front of the Quart app;
everything else goes to Quart.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any
from urllib.parse import quote

import trio
from hypercorn.typing import (
    ASGIReceiveCallable,
    ASGISendCallable,
    HTTPScope,
    Scope,
)
from quart import Quart, Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from ..channels.channel import Channel
from ..channels.registry import Registry
from ..config import Config
from ..config.sources import is_source_name
from ..errors import NotFound, ProxyError
from ..hls.variants import render_master_playlist
from ..hls.window import Segment
from ..upstream.engine import KeyType
from ..upstream.resources import CONTENT_TYPES
from ..upstream.sources import RENDITION_NAME, SOURCE_PREFIX
from .asgi import send_response
from .guards import check_bearer, check_request, client_address
from .ids import client_identity, is_channel_name, parse_stream_key

__all__ = ["PLAYLIST_TYPE", "ProxyApp", "create_app"]

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": "Content-Length"}
_CORS_RAW = [(k.lower().encode(), v.encode()) for k, v in CORS.items()]
_PREFLIGHT = [
    *_CORS_RAW,
    (b"access-control-allow-methods", b"GET, HEAD, OPTIONS"),
    (b"access-control-allow-headers", b"*"),
    (b"access-control-max-age", b"86400"),
]
_IMMUTABLE = b"public, max-age=3600, immutable"
_MEDIA_PATH = re.compile(
    r"/(ace/hls|sources)/((?:[0-9a-f]{40}|[a-z0-9][a-z0-9_-]{0,63})(?:\.r[0-9]{1,2})?)/"
    r"([0-9a-f]{8})/"
    r"(r/)?([0-9]{1,15})\.(ts|m4s|aac|ac3|ec3|mp3|vtt|mp4|key)"
)


def channel_base(root_path: str, channel: Channel) -> str:
    """The URL path every segment, init section and key of this channel incarnation lives under."""
    if channel.name.startswith(SOURCE_PREFIX):
        source = channel.name.removeprefix(SOURCE_PREFIX)
        return f"{root_path}/sources/{source}/{channel.incarnation}/"
    return f"{root_path}/ace/hls/{channel.name}/{channel.incarnation}/"


def segment_path(root_path: str, channel: Channel, segment: Segment) -> str:
    return f"{channel_base(root_path, channel)}{segment.sequence}.{segment.meta.extension}"


def resource_path(root_path: str, channel: Channel, number: int) -> str:
    return f"{channel_base(root_path, channel)}r/{channel.resources.filename(number)}"


def error_response(error: ProxyError) -> Response:
    response = Response(
        json.dumps(error.body()), status=error.status, content_type="application/json"
    )
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(max(1, round(error.retry_after)))
    response.headers.update(CORS)
    return response


def create_app(registry: Registry, config: Config) -> Quart:
    app = QuartTrio(__name__)
    # Quart would cut off any response body still being sent after 60 s; our waits have their
    # own deadlines instead.
    app.config["RESPONSE_TIMEOUT"] = None
    app.config["BODY_TIMEOUT"] = 30
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024

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
        return response

    @app.before_request
    async def guard_state_changes() -> None:
        # Anything that can change state needs the key; GET, HEAD and OPTIONS only read.
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            _require_key(config)

    @app.route("/healthz", methods=["GET", "HEAD"])
    async def healthz() -> dict[str, Any]:
        return {"status": "ok"}

    @app.route("/proxy/status")
    async def status() -> dict[str, Any]:
        return registry.snapshot()

    @app.route("/proxy/channels/<name>", methods=["DELETE"])
    async def delete_channel(name: str) -> Response:
        # The key was checked by guard_state_changes, as for every state-changing request.
        if not is_channel_name(name) or not registry.stop_channel(name, "stopped by request"):
            raise NotFound(f"no running channel {name[:64]!r}")
        return Response(
            json.dumps({"channel": name, "status": "stopping"}),
            status=202,
            content_type="application/json",
        )

    @app.route("/ace/getstream", methods=["GET", "HEAD"])
    @app.route("/ace/manifest.m3u8", methods=["GET", "HEAD"])
    async def getstream() -> Response:
        key_type, key = parse_stream_key(request.args)
        if request.method == "HEAD":
            # A HEAD probes the URL: it must not open an engine session.
            return Response("", content_type=PLAYLIST_TYPE, headers=CORS)
        registry.get_or_start(key_type, key)
        location = (
            f"{request.root_path}/ace/hls/{key}/index.m3u8?client={secrets.token_urlsafe(12)}"
        )
        if key_type == "infohash":
            location += "&kind=infohash"
        return Response("", status=302, headers={"Location": location, **CORS})

    @app.route("/ace/hls/<name>/index.m3u8", methods=["GET", "HEAD"])
    async def playlist(name: str) -> Response:
        if RENDITION_NAME.fullmatch(name):
            return await rendition_playlist(name)
        if not is_channel_name(name):
            raise NotFound("unknown channel")
        channel = registry.get(name)
        if request.method == "HEAD":
            if channel is None:
                raise NotFound(f"no running channel {name}")
            return Response("", content_type=PLAYLIST_TYPE, headers=CORS)
        if channel is None:
            kind: KeyType = "infohash" if request.args.get("kind") == "infohash" else "content_id"
            channel = registry.get_or_start(kind, name)
        return await serve_playlist(channel)

    @app.route("/sources/<name>.m3u8", methods=["GET", "HEAD"])
    async def source_playlist(name: str) -> Response:
        url = config.source_url(name) if is_source_name(name) else None
        if url is None:
            raise NotFound(f"no source named {name[:64]!r}")
        if request.method == "HEAD":
            # A HEAD probes the URL: it must not start the channel.
            return Response("", content_type=PLAYLIST_TYPE, headers=CORS)
        if not request.args.get("client"):
            # As /ace/getstream does: a URL of its own per player, so reloads tell players apart.
            location = f"{request.root_path}/sources/{name}.m3u8?client={secrets.token_urlsafe(12)}"
            registry.get_or_start_source(name, url)
            return Response("", status=302, headers={"Location": location, **CORS})
        return await serve_playlist(registry.get_or_start_source(name, url))

    @app.route("/sources/<name>/index.m3u8", methods=["GET", "HEAD"])
    async def source_rendition_playlist(name: str) -> Response:
        return await rendition_playlist(SOURCE_PREFIX + name)

    async def rendition_playlist(name: str) -> Response:
        """The playlist of an audio or subtitle rendition of a running channel's variant."""
        match = RENDITION_NAME.fullmatch(name)
        parent = registry.get(match.group(1)) if match else None
        if match is None or parent is None:
            raise NotFound("no such rendition")
        if request.method == "HEAD":
            return Response("", content_type=PLAYLIST_TYPE, headers=CORS)
        channel = registry.get_or_start_rendition(parent, int(match.group(2)))
        if channel is None:
            raise NotFound("no such rendition")
        return await serve_playlist(channel)

    async def serve_playlist(channel: Channel) -> Response:
        """The channel's playlist, once its first segments are there (or an error).

        When the channel follows a variant with renditions of their own, a player first gets a
        master playlist naming our media playlist (``media=1``) and our rendition playlists.
        """
        client = client_identity(
            request.args.get("client"),
            request.headers.get("X-Playback-Session-Id"),
            client_address(
                request.remote_addr or "",
                request.headers.get("X-Forwarded-For"),
                config.trusted_proxies,
            ),
            request.headers.get("User-Agent", ""),
        )
        registry.admission.check_player(channel, client, trio.current_time())
        channel.touch(client)
        if not channel.ready.is_set():
            with trio.move_on_after(config.hls_buffer_ready_timeout):
                await channel.wait_ready()
        channel.check_servable()
        channel.touch(client)
        root = request.root_path
        variant = channel.variant
        if variant is not None and variant.separate_renditions and not request.args.get("media"):
            query = request.query_string.decode("latin-1")
            token = quote(request.args.get("client", ""), safe="")
            base = channel_base(root, channel).removesuffix(f"{channel.incarnation}/")

            def rendition_uri(index: int) -> str:
                return f"{base.removesuffix('/')}.r{index}/index.m3u8?client={token}"

            media = f"{request.path}?{query}&media=1" if query else f"{request.path}?media=1"
            master = render_master_playlist(variant, media, rendition_uri)
            return Response(
                master, content_type=PLAYLIST_TYPE, headers={"Cache-Control": "no-cache", **CORS}
            )
        body = channel.render_playlist(
            lambda segment: segment_path(root, channel, segment),
            lambda number: resource_path(root, channel, number),
        )
        return Response(
            body, content_type=PLAYLIST_TYPE, headers={"Cache-Control": "no-cache", **CORS}
        )

    return app


def _require_key(config: Config) -> None:
    check_bearer(request.headers.get("Authorization"), config.api_key)


class ProxyApp:
    """The ASGI entry point: segments answered here from memory, everything else by Quart."""

    def __init__(self, registry: Registry, config: Config) -> None:
        self.registry = registry
        self.quart = create_app(registry, config)

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "http":
            refused = check_request(scope["path"], scope["query_string"], scope["headers"])
            if refused is not None:
                status, code, message = refused
                body = json.dumps({"error": code, "message": message}).encode()
                headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
                await send_response(send, status, [*headers, *_CORS_RAW], body)
                return
            # A CORS preflight, for the player-facing paths (not the control API).
            if scope["method"] == "OPTIONS" and not scope["path"].startswith("/proxy/"):
                await send_response(send, 204, _PREFLIGHT, b"")
                return
            if scope["method"] in ("GET", "HEAD"):
                match = _MEDIA_PATH.fullmatch(scope["path"])
                if match is not None:
                    prefix, name, *rest = match.groups()
                    if prefix == "sources":
                        name = SOURCE_PREFIX + name
                    await self._media(scope, send, name, *rest)
                    return
        await self.quart(scope, receive, send)

    async def _media(
        self,
        scope: HTTPScope,
        send: ASGISendCallable,
        name: str,
        incarnation: str,
        resource: str | None,
        number: str,
        extension: str,
    ) -> None:
        """A segment (``<seq>.<ext>``) or an init section or key (``r/<n>.mp4``, ``r/<n>.key``)."""
        head = scope["method"] == "HEAD"
        channel = self.registry.find(name, incarnation)
        data: bytes | None = None
        if channel is not None and resource:
            found = channel.resources.lookup(int(number))
            if found is not None and extension == ("key" if found[0] == "key" else "mp4"):
                data = found[1]
        elif channel is not None:
            segment = channel.window.get(int(number))
            if segment is not None and segment.meta.extension == extension:
                data = segment.data
        if data is None:
            body = json.dumps(NotFound(f"no such media {quote(scope['path'])}").body()).encode()
            headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
            await send_response(send, 404, [*headers, *_CORS_RAW], body, head=head)
            return
        content_type = CONTENT_TYPES[extension].encode()
        headers = [(b"content-type", content_type), (b"cache-control", _IMMUTABLE)]
        await send_response(send, 200, [*headers, *_CORS_RAW], data, head=head)
