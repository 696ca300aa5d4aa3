"""Which requests the lean path answers, and with what: the same decisions the app makes.

:meth:`LeanPath.take` looks at a parsed head and says whether the lean path answers it — a
``GET``/``HEAD`` of a channel's media (segments, init sections, keys) or playlist, of
``/ace/getstream`` and ``/ace/manifest.m3u8`` asking for HLS, of a source's playlist, and CORS
preflights — with no side effect, so that a request it does not take goes to Hypercorn and the
app exactly as before. The checks the app makes in front of its routes come first, in its order,
and a request any of them would refuse is not taken (the app refuses it, as it always did): the
limits of :func:`~..guards.check_request`, ``format=`` (MPEG-TS is the app's), the player key
(:mod:`..keys`), the forwarded-request cap (:mod:`..inflight`). Then :meth:`LeanPath.answer`
tells ``heard`` and calls what the app's handlers call: :func:`~..media.media_reply` and
:class:`~..playlists.Playlists`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl

from ...channels.channel import Channel
from ...channels.registry import Registry
from ...config import Config
from ...errors import BadRequest, ProxyError
from .. import urls
from ..edge import believe_client
from ..guards import check_request
from ..inflight import ForwardedLimit
from ..keys import PlayerKeys
from ..media import PREFLIGHT, media_reply, media_sent
from ..playlists import Asked, Playlists, Reply, Wait, error_reply
from .parser import Head

__all__ = ["LeanPath", "Taken"]

Heard = Callable[[str], None]


class Taken:
    """A request the lean path answers: its head, and what :meth:`LeanPath.take` read of it."""

    __slots__ = ("args", "head", "kind", "media", "name", "scope")

    def __init__(self, head: Head, kind: str, scope: dict[str, Any]) -> None:
        self.head = head
        self.kind = kind
        self.scope = scope
        """The little the edge reads of a request: its peer and its headers."""
        self.media: urls.MediaRequest | None = None
        self.name = ""
        self.args: dict[str, str] = {}


class LeanPath:
    """The hot requests of the proxy serving ``registry`` under ``config``."""

    def __init__(
        self,
        registry: Registry,
        config: Config,
        forwarded: ForwardedLimit,
        heard: Heard | None = None,
    ) -> None:
        self.registry = registry
        self.config = config
        self.forwarded = forwarded
        self.heard = heard
        self.keys = PlayerKeys.of(config)
        self.playlists = Playlists(registry, config)

    def take(self, head: Head, peer: tuple[str, int]) -> Taken | None:
        """What the lean path answers of ``head`` from ``peer``; None: the app's to answer."""
        method, path = head.method, head.path
        scope = {"client": peer, "headers": head.headers}
        if method == "OPTIONS":
            taken = None if path.startswith("/proxy/") else Taken(head, "preflight", scope)
        elif method not in ("GET", "HEAD"):
            return None
        else:
            taken = self._route(head, scope)
        if taken is None or check_request(path, head.query, head.headers) is not None:
            return None
        if taken.kind in ("playlist", "getstream", "source", "rendition"):
            try:
                taken.args = _args(head.query)
                if urls.match_ts(path, taken.args, self.config.stream_mode) is not None:
                    return None
            except (BadRequest, UnicodeDecodeError):
                return None
        if self.keys.required:
            client = believe_client(scope, self.config.trusted_proxies)
            try:
                self.keys.check_request(method, path, head.query, client)
            except ProxyError:
                return None
        return taken

    def _route(self, head: Head, scope: dict[str, Any]) -> Taken | None:
        path = head.path
        media = urls.match_media(path)
        if media is not None:
            taken = Taken(head, "media", scope)
            taken.media = media
            return taken
        if path in (urls.GETSTREAM.rule, urls.MANIFEST.rule):
            return Taken(head, "getstream", scope)
        for kind, template in (
            ("playlist", urls.PLAYLIST),
            ("source", urls.SOURCE),
            ("rendition", urls.SOURCE_RENDITION),
        ):
            found = template.match(path)
            if found is not None:
                taken = Taken(head, kind, scope)
                taken.name = found["name"]
                return taken
        return None

    @contextmanager
    def holding(self, taken: Taken) -> Iterator[bool]:
        """Count ``taken`` in flight for the forwarded-request cap inside the block; False:
        over the cap (the app refuses it)."""
        with self.forwarded.holding(taken.scope) as held:
            yield held

    async def answer(self, taken: Taken, wait: Wait = Channel.wait_ready) -> Reply:
        """The reply to ``taken`` (the app's, byte for byte); ``wait`` waits for a channel's
        first segments."""
        head = taken.head
        if self.heard is not None:
            self.heard(head.path)
        if taken.kind == "media":
            assert taken.media is not None
            status, headers, body = media_reply(self.registry, head.path, taken.media)
            if head.method == "GET":
                media_sent(taken.media, status, body)
            return Reply(status, headers, body)
        if taken.kind == "preflight":
            return Reply(204, PREFLIGHT, b"")
        asked = Asked(
            head.method,
            head.path,
            head.query,
            taken.args,
            believe_client(taken.scope, self.config.trusted_proxies),
            _text(head.header(b"x-playback-session-id")),
            _text(head.header(b"user-agent")) or "",
        )
        playlists = self.playlists
        try:
            if taken.kind == "getstream":
                return playlists.getstream(asked)
            if taken.kind == "source":
                return await playlists.source_playlist(asked, taken.name, wait)
            if taken.kind == "rendition":
                name = urls.SOURCES.prefix + taken.name
                return await playlists.rendition_playlist(asked, name, wait)
            return await playlists.playlist(asked, taken.name, wait)
        except ProxyError as error:
            return error_reply(error)


def _args(query: bytes) -> dict[str, str]:
    """The query's parameters, the first value of each (as Quart's ``request.args.get``)."""
    args: dict[str, str] = {}
    for name, value in parse_qsl(query.decode("utf-8"), keep_blank_values=True):
        args.setdefault(name, value)
    return args


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")
