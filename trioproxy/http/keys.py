"""Player keys: with ``TRIOPROXY_PLAYER_KEYS`` (or ``TRIOPROXY_PLAYER_KEYS_FILE``, or the
passwords of ``TRIOPROXY_XTREAM_USERS``) set, every stream URL needs ``?key=<a player key>``,
except from a media server (``TRIOPROXY_MEDIA_SERVERS``), which cannot add one.

The rule is default-deny: every path of :data:`.urls.PATHS` needs a key except those in
:data:`OPEN_PATHS` (health, status, the status page, metrics, the control API, which has
``API_KEY``) and the media paths (segments, init sections, keys), which carry no per-player key
so that a shared cache in front can keep them. A stream path added to the URL scheme is keyed
without further work. :class:`~.app.ProxyApp` checks in front of everything else, the lean
media path (and MPEG-TS) included, so a refused request reaches no handler and opens no engine
session.

Media URLs stay unguessable without a key of their own: they name the channel's incarnation, 128
random bits drawn for each run of a channel, which only a keyed player's playlist reveals
(``/proxy/status`` leaves it out while keys are set).

Keys are compared in constant time (each supplied key against every configured one) and never
logged or echoed.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from urllib.parse import parse_qs, quote

from ..channels.per_address import is_media_server
from ..config import Config
from ..config.parsers import IPNetwork
from ..errors import Unauthorized
from . import urls

__all__ = [
    "KEYED_PATHS",
    "KEY_PARAM",
    "OPEN_PATHS",
    "PlayerKeys",
    "key_query",
    "needs_key",
    "supplied_key",
]

KEY_PARAM = "key"
"""The query parameter a player gives its key in."""

OPEN_PATHS: tuple[urls.Path, ...] = (
    urls.HEALTHZ,
    urls.STATUS,
    urls.STATUS_PAGE,
    urls.METRICS,
    urls.CHANNEL,
    urls.XTREAM_API,
    urls.XTREAM_M3U,
    urls.XTREAM_XMLTV,
    urls.XTREAM_TS,
    urls.XTREAM_HLS,
)
"""Paths that need no player key: the control API has ``API_KEY`` instead, and the Xtream
paths check their own login (:mod:`.logins`), whose password is a player key."""
_MEDIA_PATHS = (urls.SEGMENT, urls.RESOURCE, urls.SOURCE_SEGMENT, urls.SOURCE_RESOURCE)
KEYED_PATHS: tuple[urls.Path, ...] = tuple(
    path for path in urls.PATHS if path not in OPEN_PATHS and path not in _MEDIA_PATHS
)
"""Every stream path: whatever starts a channel or answers a playlist (or a stream)."""


def needs_key(path: str) -> bool:
    """Is ``path`` (the request path, under the app's root) a stream path?"""
    return any(keyed.regex.fullmatch(path) for keyed in KEYED_PATHS)


@dataclass(frozen=True)
class PlayerKeys:
    """The configured player keys; none configured: every stream URL is open."""

    _keys: tuple[bytes, ...] = field(default=(), repr=False)
    media_servers: tuple[IPNetwork, ...] = ()
    """``TRIOPROXY_MEDIA_SERVERS``: they need no key (they cannot add one to a tuner's URL)."""

    @classmethod
    def of(cls, config: Config) -> PlayerKeys:
        passwords = (password for _, password in config.xtream_users)
        keys = dict.fromkeys((*config.player_keys, *config.player_keys_file, *passwords))
        return cls(tuple(key.encode() for key in keys), config.media_servers)

    @property
    def required(self) -> bool:
        return bool(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def valid(self, supplied: str | None) -> bool:
        """Is ``supplied`` one of the keys? Runs through every key whatever matches."""
        if supplied is None:
            return False
        candidate = supplied.encode("utf-8", "replace")
        found = False
        for key in self._keys:
            found |= hmac.compare_digest(candidate, key)
        return found

    def check_request(self, method: str, path: str, query: bytes, client: str) -> None:
        """Raise 401 when a request from ``client`` (the address the edge believes) needs a key
        it lacks: the one decision of both HTTP paths. A CORS preflight and a media server need
        none."""
        if method != "OPTIONS" and self._keys and not is_media_server(client, self.media_servers):
            self.check_query(path, query)

    def check_query(self, path: str, query: bytes) -> str | None:
        """The key the request carries; raise 401 when ``path`` needs one it lacks. ``None``
        when no key is needed (none configured, or an open path)."""
        if not self._keys or not needs_key(path):
            return None
        supplied = supplied_key(query)
        if supplied is None:
            raise Unauthorized(
                f"this stream needs a player key: add ?{KEY_PARAM}=<your key> to the URL"
            )
        if not self.valid(supplied):
            raise Unauthorized(f"wrong player key in ?{KEY_PARAM}=")
        return supplied


def supplied_key(query: bytes) -> str | None:
    """The ``key`` of a query string (the first one), if any."""
    values = parse_qs(query.decode("utf-8", "replace"), keep_blank_values=True).get(KEY_PARAM)
    return values[0] if values else None


def key_query(key: str | None) -> str:
    """``key=<key>`` to add to a URL handed on, or ``""`` when there is none."""
    return "" if key is None else f"{KEY_PARAM}={quote(key, safe='')}"
