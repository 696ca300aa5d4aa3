"""The lean media path: the ASGI dispatcher in front of the Quart app.

Segments, init sections and keys (the hot path) are answered here from memory, without Quart's
per-request machinery. So are MPEG-TS players (:func:`~.urls.match_ts`): each a long response
written by its own request task from the channel's TS stream
(:func:`trioproxy.channels.ts.play`) — straight to the socket after the head on HTTP/1.x
connections of our accept loop (:mod:`.direct`), through ASGI otherwise — cut loose by the
stream when it lags, and gone the moment its connection closes. The dispatcher also refuses,
before anything routes them, requests over the limits of :mod:`.guards` and WebSocket
handshakes (the API has none), and answers CORS preflights; everything else goes on to the app
behind it.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from urllib.parse import parse_qsl, quote

import trio
from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGISendCallable,
    HTTPScope,
    Scope,
)

from ..channels.answers import check_servable
from ..channels.channel import Channel
from ..channels.join import Content, Relayed, Source, Visitor, Want, join, relay_visitor
from ..channels.registry import Registry
from ..channels.ts_play import play
from ..channels.ts_player import TsPlayer, not_mpegts
from ..config import Config
from ..errors import BadRequest, NotFound, NotMpegTs, ProxyError
from ..observability.metrics import BYTES_SENT, SEGMENTS_SERVED
from ..upstream.resources import CONTENT_TYPES
from .asgi import send_response
from .connections import WriteCut
from .direct import DirectBody, direct_body
from .edge import believe_client, visitor
from .guards import check_request
from .ids import parse_stream_key
from .lineup import Lineup, xtream_want
from .logins import XtreamLogins
from .urls import MediaRequest, TsRequest, match_media, match_ts

__all__ = [
    "CORS",
    "IMMUTABLE",
    "PREFLIGHT",
    "MediaDispatcher",
    "media_data",
    "media_reply",
    "media_sent",
    "no_such_media",
]

CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": "Content-Length"}
_CORS_RAW = [(k.lower().encode(), v.encode()) for k, v in CORS.items()]
PREFLIGHT = [
    *_CORS_RAW,
    (b"access-control-allow-methods", b"GET, HEAD, OPTIONS"),
    (b"access-control-allow-headers", b"*"),
    (b"access-control-max-age", b"86400"),
]
IMMUTABLE = "public, max-age=3600, immutable"
"""Media URLs never name two different byte strings: anything may cache them."""
_IMMUTABLE = IMMUTABLE.encode()
_NO_STORE = b"no-store"
_JSON = b"application/json"
_CONTENT_TYPES = {extension: kind.encode() for extension, kind in CONTENT_TYPES.items()}
_SERVED = SEGMENTS_SERVED.labels(kind="hls")
_SENT = BYTES_SENT.labels(kind="hls")
_TS_SERVED = SEGMENTS_SERVED.labels(kind="ts")
_TS_SENT = BYTES_SENT.labels(kind="ts")
TS_TYPE = b"video/mp2t"


def media_data(registry: Registry, media: MediaRequest) -> bytes | None:
    """The bytes of the segment, init section or key ``media`` names, if the channel has them."""
    channel = registry.find(media.channel, media.incarnation)
    if channel is None:
        return None
    if media.resource:
        found = channel.resources.lookup(media.number)
        if found is not None and media.extension == ("key" if found[0] == "key" else "mp4"):
            return found[1]
        return None
    segment = channel.window.get(media.number)
    if segment is not None and segment.meta.extension == media.extension:
        return segment.data
    return None


def no_such_media(path: str) -> NotFound:
    return NotFound(f"no such media {quote(path)}")


def media_reply(
    registry: Registry, path: str, media: MediaRequest
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The status, headers and body that answer ``media`` (asked for at ``path``), for every
    path that serves media: this dispatcher and the lean HTTP/1.1 path."""
    data = media_data(registry, media)
    if data is None:
        body = json.dumps(no_such_media(path).body()).encode()
        return 404, [(b"content-type", _JSON), (b"cache-control", _NO_STORE), *_CORS_RAW], body
    kind = _CONTENT_TYPES[media.extension]
    return 200, [(b"content-type", kind), (b"cache-control", _IMMUTABLE), *_CORS_RAW], data


def media_sent(media: MediaRequest, status: int, body: bytes) -> None:
    """Count a media answer's body as sent (the metrics of :mod:`~..observability`)."""
    if status == 200:
        _SENT.inc(len(body))
        if not media.resource:
            _SERVED.inc()


class MediaDispatcher:
    """Serve media from ``registry``; hand every other request to ``app``."""

    def __init__(self, registry: Registry, app: ASGIFramework, config: Config) -> None:
        self.registry = registry
        self.app = app
        self.config = config
        self.logins = XtreamLogins.of(config)
        self.lineup = Lineup(config.channels_file or ())

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "http":
            refused = check_request(scope["path"], scope["query_string"], scope["headers"])
            if refused is not None:
                status, code, message = refused
                body = json.dumps({"error": code, "message": message}).encode()
                headers = [(b"content-type", _JSON), (b"connection", b"close")]
                await send_response(send, status, [*headers, *_CORS_RAW], body)
                return
            # A CORS preflight, for the player-facing paths (not the control API).
            if scope["method"] == "OPTIONS" and not scope["path"].startswith("/proxy/"):
                await send_response(send, 204, PREFLIGHT, b"")
                return
            if scope["method"] in ("GET", "HEAD"):
                media = match_media(scope["path"])
                if media is not None:
                    await self._media(scope["path"], scope["method"] == "HEAD", send, media)
                    return
                args = dict(parse_qsl(scope["query_string"].decode(), keep_blank_values=True))
                try:
                    ts = match_ts(scope["path"], args, self.config.stream_mode)
                except BadRequest as error:  # format= neither hls nor ts
                    body = json.dumps(error.body()).encode()
                    headers = [(b"content-type", _JSON), (b"cache-control", _NO_STORE)]
                    await send_response(send, error.status, [*headers, *_CORS_RAW], body)
                    return
                if ts is not None:
                    await self._ts(scope, receive, send, ts, args)
                    return
        elif scope["type"] == "websocket":
            await _refuse_websocket(receive, send)
            return
        await self.app(scope, receive, send)

    async def _media(
        self, path: str, head: bool, send: ASGISendCallable, media: MediaRequest
    ) -> None:
        status, headers, body = media_reply(self.registry, path, media)
        await send_response(send, status, headers, body, head=head)
        if not head:
            media_sent(media, status, body)

    async def _ts(
        self,
        scope: HTTPScope,
        receive: ASGIReceiveCallable,
        send: ASGISendCallable,
        request: TsRequest,
        args: dict[str, str],
    ) -> None:
        """One MPEG-TS player, for as long as its connection is open and the channel runs."""
        head = scope["method"] == "HEAD"
        # Each TS connection is a player of its own.
        config = self.config
        who = visitor(
            scope, "ts:" + secrets.token_urlsafe(9), config.trusted_proxies, config.media_servers
        )
        label = believe_client(scope, config.trusted_proxies)
        keepalive = config.ts_keepalive if request.keepalive is None else request.keepalive
        try:
            if request.relay is not None and self.registry.membership is not None:
                await self.registry.membership.recognise(args.get("relay", ""))
            channel = self._ts_channel(request, args, head, who)
            if channel is not None and not keepalive:
                # Nothing goes out before media: the answer waits for it, or is an error. The
                # wait is a TS player of the channel, counted by every cap as one.
                with channel.ts.joined(TsPlayer(label, lambda: None)):
                    with trio.move_on_after(config.hls_buffer_ready_timeout):
                        if await _left_before_media(channel, receive):
                            return
                    check_servable(channel)
                    _check_mpegts(channel)
        except ProxyError as error:
            await _send_error(send, error, head)
            return
        headers = [(b"content-type", TS_TYPE), (b"cache-control", _NO_STORE), *_CORS_RAW]
        if channel is None:  # a HEAD probes the URL: nothing starts
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        # On a connection of our own speaking HTTP/1.x, the body goes to the socket directly.
        body = direct_body(scope, self.config.send_timeout)
        if body is not None:
            headers += body.headers
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        relay = args.get("relay", "").partition(".")[0] if request.relay is not None else None
        ended = await _play(channel, label, receive, send, body, config, keepalive, relay)
        if ended is None:
            return  # cut, or gone: the connection closes without the end of the body
        if body is None:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await body.end()

    def _ts_channel(
        self, request: TsRequest, args: dict[str, str], head: bool, who: Visitor
    ) -> Channel | None:
        """The channel a TS request plays (started if need be); None for a HEAD."""
        want: Want
        if request.relay is not None:
            want = Relayed(*request.relay)
            who = relay_visitor(self.registry, args.get("relay", ""), who)
        elif request.xtream is not None:
            user, password, stream_id = request.xtream
            want = xtream_want(self.lineup, self.logins, self.config, user, password, stream_id)
        elif request.source is None:
            key_type, key = parse_stream_key(args)
            want = Content(key_type, key)
        else:
            url = self.config.source_url(request.source)
            if url is None:
                raise NotFound(f"no source named {request.source!r}")
            want = Source(request.source, url)
        if head:
            return None
        channel = join(self.registry, want, who)
        assert channel is not None  # only renditions may be missing
        _check_mpegts(channel)
        return channel


def _check_mpegts(channel: Channel) -> None:
    newest = channel.window.latest(1)
    reason = not_mpegts(newest[0]) if newest else None
    if reason is not None:
        raise NotMpegTs(
            f"channel {channel.name} cannot be served as MPEG-TS: {reason}; "
            "ask for HLS (format=hls) instead"
        )


async def _left_before_media(channel: Channel, receive: ASGIReceiveCallable) -> bool:
    """Wait, counted as a player, until ``channel`` has segments or ends (False), or the client
    leaves (True)."""
    if channel.ready.is_set():
        return False
    gone = False
    async with trio.open_nursery() as nursery:

        async def watch() -> None:
            nonlocal gone
            while (await receive())["type"] != "http.disconnect":
                pass
            gone = True
            nursery.cancel_scope.cancel()

        nursery.start_soon(watch)
        await channel.wait_ready()
        nursery.cancel_scope.cancel()
    return gone


async def _play(
    channel: Channel,
    label: str,
    receive: ASGIReceiveCallable,
    send: ASGISendCallable,
    body: DirectBody | None,
    config: Config,
    keepalive: float,
    relay: str | None,
) -> str | None:
    """Play ``channel`` to one TS player, through ``body`` if there is one, else through ASGI
    ``send``; None when its connection closed or it was cut. ``relay``: the id of the instance
    whose relay the player is."""
    ended: str | None = None
    with WriteCut() as cut, trio.CancelScope() as scope:

        def disconnect() -> None:
            cut.close()
            scope.cancel()

        player = TsPlayer(label, disconnect, relay=relay)
        stream = channel.ts

        def send_timeout() -> float:
            # The lag bound cuts a slow reader; a stalled write is only a backstop behind it.
            return config.send_timeout + (stream.max_lag + 1) * stream.target_duration

        async def write(data: bytes) -> None:
            cut.send_timeout = send_timeout()
            await send({"type": "http.response.body", "body": data, "more_body": True})
            _TS_SENT.inc(len(data))

        async def write_direct(data: bytes) -> None:
            assert body is not None
            body.send_timeout = send_timeout()
            await body.write(data)
            _TS_SENT.inc(len(data))

        def offer(data: bytes) -> bool:
            # The stream's writer, for a player that waits: the connection takes what it can
            # at once, the player's task writes the rest.
            assert body is not None
            try:
                done = body.write_now(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                scope.cancel()  # the client is gone
                return True
            _TS_SENT.inc(len(data))
            return done

        if body is not None:
            cut.stream = body.stream  # a cut closes the connection, even mid-write
            player.offer = offer
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_watch_disconnect, receive, scope)
            try:
                ended = await play(
                    stream,
                    player,
                    write if body is None else write_direct,
                    finished=lambda: channel.endlist,
                    segment_sent=_TS_SERVED.inc,
                    keepalive=keepalive,
                )
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                ended = None  # the connection closed in the middle of a write
            nursery.cancel_scope.cancel()
    return ended if player.cut is None else None


async def _watch_disconnect(receive: ASGIReceiveCallable, scope: trio.CancelScope) -> None:
    """End the player when the client goes away (the server says so through ``receive``)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            scope.cancel()
            return


async def _send_error(send: ASGISendCallable, error: ProxyError, head: bool) -> None:
    headers = [(b"content-type", _JSON), (b"cache-control", _NO_STORE), *_CORS_RAW]
    if error.retry_after is not None:
        headers.append((b"retry-after", str(max(1, round(error.retry_after))).encode()))
    body = json.dumps(error.body()).encode()
    await send_response(send, error.status, headers, body, head=head)


async def _refuse_websocket(receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    """No path of the API speaks WebSocket: close before accepting, which the server answers
    with an HTTP 403 (Quart would fail on the handshake, with a 500 and two tracebacks)."""
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close", "code": 1008, "reason": None})
