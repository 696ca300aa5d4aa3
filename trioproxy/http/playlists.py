"""What a player's HLS requests are answered with, decided once for every path that serves them.

The redirect from ``/ace/getstream`` (and ``/ace/manifest.m3u8``, and a source's playlist URL)
to a channel's playlist with a token of the player's own, and the playlists themselves: the
Quart routes (:mod:`.routes.streams`) and the lean HTTP/1.1 path (:mod:`.lean`) each read a
request into an :class:`Asked`, call :class:`Playlists`, and only put the :class:`Reply` on
their own wire. A refusal is a raised ``ProxyError``: the app's error handler and
:func:`error_reply` answer it with the same status, headers and body.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import quote

import trio

from ..channels.answers import check_servable
from ..channels.channel import Channel
from ..channels.join import Content, Rendition, Source, Visitor, Want, join
from ..channels.registry import Registry
from ..config import Config
from ..errors import NotFound, ProxyError
from ..hls.variants import render_master_playlist
from ..upstream.engine import KeyType
from ..upstream.sources import RENDITION_NAME
from . import urls
from .edge import visitor_of
from .ids import client_identity, parse_stream_key
from .keys import KEY_PARAM, PlayerKeys, key_query
from .media import CORS

__all__ = [
    "PLAYLIST_TYPE",
    "Asked",
    "Headers",
    "Playlists",
    "Reply",
    "Wait",
    "error_reply",
    "key_param",
    "media_playlist",
    "render",
]

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
Headers = list[tuple[bytes, bytes]]
"""Response headers: lower-case names; ``content-length`` is the wire's to add."""
Wait = Callable[[Channel], Awaitable[None]]
"""How a request waits, counted as a player, for a channel's first segments (by default
``Channel.wait_ready``; the lean path also ends the wait when its client leaves)."""

_CORS: Headers = [(k.lower().encode(), v.encode()) for k, v in CORS.items()]
_PLAYLIST: Headers = [(b"content-type", PLAYLIST_TYPE.encode()), *_CORS]
_FRESH_PLAYLIST: Headers = [(b"cache-control", b"no-cache"), *_PLAYLIST]
_REDIRECT_TYPE = (b"content-type", b"text/html; charset=utf-8")


class Reply(NamedTuple):
    """A whole response: its status, its headers and its body (a HEAD sends the headers only,
    with the body's ``content-length``)."""

    status: int
    headers: Headers
    body: bytes


def error_reply(error: ProxyError) -> Reply:
    """``error`` as a client sees it: JSON, with CORS and, when it has one, ``retry-after``."""
    headers: Headers = [(b"content-type", b"application/json"), *_CORS]
    if error.retry_after is not None:
        headers.append((b"retry-after", str(max(1, round(error.retry_after))).encode()))
    return Reply(error.status, headers, json.dumps(error.body()).encode())


def key_param(keys: PlayerKeys, key: str | None) -> str:
    """``&key=<key>`` while player keys are required, else ``""``."""
    if not keys.required:
        return ""
    query = key_query(key)
    return f"&{query}" if query else ""


@dataclass(frozen=True, slots=True)
class Asked:
    """A player's request as the decisions read it, whichever path parsed it."""

    method: str
    path: str
    query: bytes
    """The raw query string."""
    args: Mapping[str, str]
    """The query's parameters (the first value of each)."""
    client: str
    """The client's address, as :func:`.edge.believe_client` believes it."""
    session: str | None = None
    """``X-Playback-Session-Id``, which some players send."""
    agent: str = ""
    """``User-Agent``."""
    root_path: str = ""

    @property
    def head(self) -> bool:
        return self.method == "HEAD"


class Playlists:
    """The HLS answers of the proxy's channels (``registry``) under ``config``."""

    def __init__(self, registry: Registry, config: Config) -> None:
        self.registry = registry
        self.config = config
        self.keys = PlayerKeys.of(config)

    def carried_key(self, asked: Asked) -> str:
        """``&key=…`` of the request's player key for the URLs it is handed (checked before the
        request got here), or ``""``."""
        return key_param(self.keys, asked.args.get(KEY_PARAM))

    def player(self, asked: Asked, token: str | None = None) -> Visitor:
        """The request's player: its address as the caps count it, and its identity on the
        channel (``token``, else what the request says of itself: :func:`.ids.client_identity`)."""
        if token is None:
            token = client_identity(
                asked.args.get("client"), asked.session, asked.client, asked.agent
            )
        return visitor_of(token=token, client=asked.client, media_servers=self.config.media_servers)

    def getstream(self, asked: Asked) -> Reply:
        """``/ace/getstream`` and ``/ace/manifest.m3u8`` asking for HLS."""
        key_type, key = parse_stream_key(asked.args)
        if asked.head:
            # A HEAD probes the URL: it must not open an engine session.
            return Reply(200, _PLAYLIST, b"")
        return self.redirect_to_playlist(asked, Content(key_type, key), self.carried_key(asked))

    def redirect_to_playlist(self, asked: Asked, want: Content | Source, key: str) -> Reply:
        """Join ``want`` as a new player and send it to the channel's playlist URL, with a token
        of its own (so that reloads tell players apart) and ``key`` (``&key=…`` or ``""``)."""
        token = secrets.token_urlsafe(12)
        join(self.registry, want, self.player(asked, client_identity(token, None, "", "")))
        if isinstance(want, Source):
            location = urls.SOURCE.build(asked.root_path, name=want.name)
        else:
            location = urls.PLAYLIST.build(asked.root_path, name=want.key)
        location += f"?client={token}{key}"
        if isinstance(want, Content) and want.key_type == "infohash":
            location += "&kind=infohash"
        return Reply(302, [(b"location", location.encode()), *_CORS, _REDIRECT_TYPE], b"")

    async def playlist(self, asked: Asked, name: str, wait: Wait = Channel.wait_ready) -> Reply:
        """``/ace/hls/<name>/index.m3u8``: a channel's playlist, or one of its renditions'."""
        if RENDITION_NAME.fullmatch(name):
            return await self.rendition_playlist(asked, name, wait)
        if asked.head:
            if self.registry.get(name) is None:
                raise NotFound(f"no running channel {name}")
            return Reply(200, _PLAYLIST, b"")
        kind: KeyType = "infohash" if asked.args.get("kind") == "infohash" else "content_id"
        return await self.serve_playlist(asked, Content(kind, name), wait)

    async def source_playlist(
        self, asked: Asked, name: str, wait: Wait = Channel.wait_ready
    ) -> Reply:
        """``/sources/<name>.m3u8``: a redirect to a URL of the player's own, then the playlist."""
        url = self.config.source_url(name)
        if url is None:
            raise NotFound(f"no source named {name!r}")
        if asked.head:
            # A HEAD probes the URL: it must not start the channel.
            return Reply(200, _PLAYLIST, b"")
        if not asked.args.get("client"):
            # As /ace/getstream does: a URL of its own per player.
            return self.redirect_to_playlist(asked, Source(name, url), self.carried_key(asked))
        return await self.serve_playlist(asked, Source(name, url), wait)

    async def rendition_playlist(
        self, asked: Asked, name: str, wait: Wait = Channel.wait_ready
    ) -> Reply:
        """The playlist of an audio or subtitle rendition of a running channel's variant."""
        match = RENDITION_NAME.fullmatch(name)
        parent = self.registry.get(match.group(1)) if match else None
        if match is None or parent is None:
            raise NotFound("no such rendition")
        if asked.head:
            return Reply(200, _PLAYLIST, b"")
        return await self.serve_playlist(asked, Rendition(parent, int(match.group(2))), wait)

    async def serve_playlist(self, asked: Asked, want: Want, wait: Wait) -> Reply:
        """The playlist of the channel ``want`` names, once its first segments are there (or
        an error); the request joins it as a player first.

        When the channel follows a variant with renditions of their own, a player first gets a
        master playlist naming our media playlist (``media=1``) and our rendition playlists.
        """
        who = self.player(asked)
        channel = join(self.registry, want, who)
        if channel is None:
            raise NotFound("no such rendition")
        channel.touch(who.token, who.counted)
        if not channel.ready.is_set():
            with trio.move_on_after(self.config.hls_buffer_ready_timeout):
                await wait(channel)
        check_servable(channel)
        channel.touch(who.token, who.counted)
        root = asked.root_path
        name = channel.name
        variant = channel.variant
        if variant is not None and variant.separate_renditions and not asked.args.get("media"):
            query = asked.query.decode("latin-1")
            token = quote(asked.args.get("client", ""), safe="")
            key = self.carried_key(asked)

            def rendition_uri(index: int) -> str:
                return f"{urls.rendition_url(root, name, index)}?client={token}{key}"

            path = asked.path
            media = f"{path}?{query}&media=1" if query else f"{path}?media=1"
            master = render_master_playlist(variant, media, rendition_uri)
            return Reply(200, _FRESH_PLAYLIST, master.encode())
        return Reply(200, _FRESH_PLAYLIST, media_playlist(channel, root))


def media_playlist(channel: Channel, root_path: str) -> bytes:
    """The media playlist of ``channel`` with its media URLs under ``root_path``: rendered once
    per change of the channel's window, the same bytes for every request in between. Media
    URLs carry no player key and no client token (:mod:`.keys`), so the prefix alone tells two
    requests' playlists apart."""
    return channel.playlist(root_path, lambda: render(channel, root_path))


def render(channel: Channel, root_path: str) -> str:
    """The playlist rendered afresh (what :func:`media_playlist` keeps)."""
    name, incarnation = channel.name, channel.incarnation
    return channel.render_playlist(
        lambda segment: urls.segment_url(
            root_path, name, incarnation, segment.sequence, segment.meta.extension
        ),
        lambda number: urls.resource_url(
            root_path, name, incarnation, channel.resources.filename(number)
        ),
    )
