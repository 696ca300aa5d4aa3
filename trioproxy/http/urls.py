"""The URL scheme of the HTTP API, each path declared once.

A :class:`Path` is a Werkzeug-style template whose placeholders are all typed by a part in
:data:`PARTS` (``<stream:name>``). From that one template come the Quart rule (with :data:`PARTS`
registered as converters), the regex the lean media path matches requests with, and the format
that builds the path for redirects and playlists.

Channels under ``/ace/hls/`` are named by their content id or infohash; channels of configured
sources live under ``/sources/`` and the registry names them with :data:`SOURCE_PREFIX`. A
:class:`Family` says which paths belong to which, so a channel's name alone gives its URLs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, NamedTuple
from urllib.parse import urlencode

from ..channels.upstreams import RELAY_RULE
from ..errors import BadRequest
from ..upstream.engine import KeyType
from ..upstream.resources import CONTENT_TYPES
from ..upstream.sources import SOURCE_PREFIX
from .ids import parse_format

__all__ = [
    "ACE",
    "CHANNEL",
    "DEVICE_XML",
    "DISCOVER",
    "EPG",
    "EPG_GZ",
    "GETSTREAM",
    "HEALTHZ",
    "LINEUP",
    "LINEUP_M3U",
    "LINEUP_POST",
    "LINEUP_STATUS",
    "M3U",
    "MANIFEST",
    "METRICS",
    "PARTS",
    "PATHS",
    "PLAYLIST",
    "RESOURCE",
    "SEGMENT",
    "SOURCE",
    "SOURCES",
    "SOURCE_RENDITION",
    "SOURCE_RESOURCE",
    "SOURCE_SEGMENT",
    "SOURCE_TS",
    "STATUS",
    "STATUS_PAGE",
    "XTREAM_API",
    "XTREAM_HLS",
    "XTREAM_M3U",
    "XTREAM_TS",
    "XTREAM_XMLTV",
    "Family",
    "MediaRequest",
    "Path",
    "StreamFormat",
    "TsRequest",
    "XtreamStream",
    "family_of",
    "match_media",
    "match_ts",
    "rendition_url",
    "resource_url",
    "segment_url",
    "source_ts_url",
    "stream_url",
    "ts_url",
]

_SOURCE = r"[a-z0-9][a-z0-9_-]{0,63}"
_RENDITION = r"\.r[0-9]{1,2}"
_RESOURCE_EXTENSIONS = ("mp4", "key")

PARTS: dict[str, str] = {
    # A channel: its content id or infohash, lower-case.
    "channel": r"[0-9a-f]{40}",
    "key_type": r"content_id|infohash",
    # A channel or one of its audio or subtitle renditions (``<channel>.r<n>``).
    "stream": rf"[0-9a-f]{{40}}(?:{_RENDITION})?",
    # A configured source, a rendition of one, either.
    "source": _SOURCE,
    "source_rendition": rf"{_SOURCE}{_RENDITION}",
    "source_stream": rf"{_SOURCE}(?:{_RENDITION})?",
    # One run of a channel: segment numbers restart with each. 128 random bits, so media URLs
    # cannot be guessed (see http/keys.py).
    "incarnation": r"[0-9a-f]{32}",
    "number": r"[0-9]{1,15}",
    "segment_ext": "|".join(e for e in CONTENT_TYPES if e not in _RESOURCE_EXTENSIONS),
    "resource_ext": "|".join(_RESOURCE_EXTENSIONS),
    # An Xtream login's user name and password, as they appear in its stream URLs.
    "xtream_user": r"[A-Za-z0-9._~-]{1,64}",
    "xtream_password": r"[A-Za-z0-9._~-]{1,256}",
}
"""Regex of each kind of path part (no ``/`` in any)."""

_PLACEHOLDER = re.compile(r"<(\w+):(\w+)>")


class Path:
    """One path of the API and the methods it answers."""

    __slots__ = ("_format", "methods", "regex", "rule")

    def __init__(self, rule: str, *methods: str) -> None:
        self.rule = rule
        """The template, also the Quart rule."""
        self.methods = methods
        if re.search("[<>]", _PLACEHOLDER.sub("", rule)):
            raise ValueError(f"a placeholder without a known kind of part in {rule!r}")
        regex, template, end = [], [], 0
        for placeholder in _PLACEHOLDER.finditer(rule):
            literal = rule[end : placeholder.start()]
            part, name = placeholder.groups()
            regex += [re.escape(literal), f"(?P<{name}>{PARTS[part]})"]
            template += [literal.replace("{", "{{").replace("}", "}}"), f"{{{name}}}"]
            end = placeholder.end()
        literal = rule[end:]
        self.regex = re.compile("".join([*regex, re.escape(literal)]))
        """Matches (``fullmatch``) the path; one named group per placeholder."""
        self._format = "".join([*template, literal.replace("{", "{{").replace("}", "}}")])

    def match(self, path: str) -> dict[str, str] | None:
        """The parts of ``path`` if it is this path, else None."""
        found = self.regex.fullmatch(path)
        return None if found is None else found.groupdict()

    def build(self, root_path: str = "", /, **parts: object) -> str:
        """This path with ``parts`` filled in, under ``root_path`` (the app's mount point)."""
        return root_path + self._format.format(**parts)

    def __repr__(self) -> str:
        return f"Path({self.rule!r}, {', '.join(map(repr, self.methods))})"


_READ = ("GET", "HEAD")

HEALTHZ = Path("/healthz", *_READ)
STATUS_PAGE = Path("/", *_READ)
"""The status page (HTML)."""
STATUS = Path("/proxy/status", "GET")
METRICS = Path("/metrics", "GET")
"""Prometheus metrics (text format)."""
CHANNEL = Path("/proxy/channels/<channel:name>", "DELETE")
"""DELETE stops the channel."""
GETSTREAM = Path("/ace/getstream", *_READ)
MANIFEST = Path("/ace/manifest.m3u8", *_READ)
PLAYLIST = Path("/ace/hls/<stream:name>/index.m3u8", *_READ)
"""The media playlist of a channel or of one of its renditions."""
SEGMENT = Path(
    "/ace/hls/<stream:name>/<incarnation:incarnation>/<number:number>.<segment_ext:extension>",
    *_READ,
)
RESOURCE = Path(
    "/ace/hls/<stream:name>/<incarnation:incarnation>/r/<number:number>.<resource_ext:extension>",
    *_READ,
)
"""An init section (``.mp4``) or a key (``.key``)."""
SOURCE = Path("/sources/<source:name>.m3u8", *_READ)
"""The playlist of a configured source."""
SOURCE_TS = Path("/sources/<source:name>.ts", *_READ)
"""A configured source as one continuous MPEG-TS stream."""
SOURCE_RENDITION = Path("/sources/<source_rendition:name>/index.m3u8", *_READ)
SOURCE_SEGMENT = Path(
    "/sources/<source_stream:name>/<incarnation:incarnation>/<number:number>"
    ".<segment_ext:extension>",
    *_READ,
)
SOURCE_RESOURCE = Path(
    "/sources/<source_stream:name>/<incarnation:incarnation>/r/<number:number>"
    ".<resource_ext:extension>",
    *_READ,
)
M3U = Path("/playlist.m3u", *_READ)
"""The channel list (``TRIOPROXY_CHANNELS_FILE``) as an extended M3U for IPTV apps."""
# The channel list's guide (XMLTV, from TRIOPROXY_EPG_SOURCES), plain and gzipped.
EPG = Path("/epg.xml", *_READ)
EPG_GZ = Path("/epg.xml.gz", *_READ)

# HDHomeRun, for media servers (Plex, Jellyfin, Emby): the device and its lineup.
DISCOVER = Path("/discover.json", *_READ)
LINEUP_STATUS = Path("/lineup_status.json", *_READ)
LINEUP = Path("/lineup.json", *_READ)
LINEUP_M3U = Path("/lineup.m3u", *_READ)
LINEUP_POST = Path("/lineup.post", "POST")  # a channel scan: done as soon as asked
DEVICE_XML = Path("/device.xml", *_READ)  # the UPnP description of the same device

# The Xtream Codes API, for IPTV apps (TiviMate, IPTV Smarters, Kodi): each checks its login.
# A channel of the list by its stream id: .ts is one MPEG-TS stream (the lean path plays it),
# .m3u8 a redirect to the channel's HLS playlist URL.
XTREAM_API = Path("/player_api.php", *_READ)
XTREAM_M3U = Path("/get.php", *_READ)
XTREAM_XMLTV = Path("/xmltv.php", *_READ)
_LIVE = "/live/<xtream_user:user>/<xtream_password:password>/<number:stream_id>"
XTREAM_TS = Path(f"{_LIVE}.ts", *_READ)
XTREAM_HLS = Path(f"{_LIVE}.m3u8", *_READ)

# ---- the cluster: an owner's MPEG-TS output of a channel, for the other instances' relays
RELAY = Path(RELAY_RULE, *_READ)

PATHS: tuple[Path, ...] = tuple(v for v in dict(globals()).values() if isinstance(v, Path))
"""Every path of the API."""


@dataclass(frozen=True, slots=True)
class Family:
    """The paths of the channels whose registry names start with ``prefix``."""

    prefix: str
    rendition: Path
    segment: Path
    resource: Path


ACE = Family("", PLAYLIST, SEGMENT, RESOURCE)
SOURCES = Family(SOURCE_PREFIX, SOURCE_RENDITION, SOURCE_SEGMENT, SOURCE_RESOURCE)


def family_of(channel: str) -> tuple[Family, str]:
    """The family of the channel named ``channel`` in the registry, and its name in URLs."""
    if channel.startswith(SOURCE_PREFIX):
        return SOURCES, channel.removeprefix(SOURCE_PREFIX)
    return ACE, channel


def segment_url(root_path: str, channel: str, incarnation: str, number: int, ext: str) -> str:
    family, name = family_of(channel)
    return family.segment.build(
        root_path, name=name, incarnation=incarnation, number=number, extension=ext
    )


def resource_url(root_path: str, channel: str, incarnation: str, filename: str) -> str:
    """The URL of resource ``filename`` (``<number>.mp4`` or ``<number>.key``)."""
    family, name = family_of(channel)
    number, _, ext = filename.partition(".")
    return family.resource.build(
        root_path, name=name, incarnation=incarnation, number=number, extension=ext
    )


def rendition_url(root_path: str, channel: str, index: int) -> str:
    """The playlist URL of rendition ``index`` of the channel named ``channel``."""
    family, name = family_of(channel)
    return family.rendition.build(root_path, name=f"{name}.r{index}")


StreamFormat = Literal["hls", "ts"]


def stream_url(
    root_path: str, key_type: Literal["content_id", "infohash"], key: str, format: StreamFormat
) -> str:
    """The URL a player opens content ``key`` with, as HLS or as one MPEG-TS stream.

    HLS: ``/ace/manifest.m3u8?id=<key>`` (its ``.m3u8`` tells players it is HLS); TS:
    ``/ace/getstream?id=<key>&format=ts``; ``infohash=`` instead of ``id=`` for an infohash.
    """
    if format == "ts":
        return ts_url(root_path, key, infohash=key_type == "infohash")
    query = {"id" if key_type == "content_id" else "infohash": key}
    return f"{MANIFEST.build(root_path)}?{urlencode(query)}"


class MediaRequest(NamedTuple):
    """A request for a segment, an init section or a key of one channel incarnation."""

    channel: str
    """The registry's name of the channel."""
    incarnation: str
    number: int
    extension: str
    resource: bool
    """An init section or key (``r/<n>.<ext>``) rather than a segment."""


_MEDIA_PARTS = ("name", "incarnation", "number", "extension")
_MEDIA = (
    (ACE, SEGMENT, False),
    (ACE, RESOURCE, True),
    (SOURCES, SOURCE_SEGMENT, False),
    (SOURCES, SOURCE_RESOURCE, True),
)


def match_media(path: str) -> MediaRequest | None:
    """The media ``path`` asks for, or None when it is no media path."""
    for family, media_path, resource in _MEDIA:
        found = media_path.regex.fullmatch(path)
        if found is not None:
            name, incarnation, number, extension = found.group(*_MEDIA_PARTS)
            return MediaRequest(family.prefix + name, incarnation, int(number), extension, resource)
    return None


class XtreamStream(NamedTuple):
    """A channel of the list, asked for with an Xtream login."""

    user: str
    password: str
    stream_id: int


class TsRequest(NamedTuple):
    """A request for a channel as one continuous MPEG-TS stream."""

    source: str | None
    """The configured source asked for; None: AceStream content (``id=`` or ``infohash=``)."""
    keepalive: float | None = None
    """Seconds of silence before null packets while no media flows yet (``keepalive=0``: none
    before the first media); None: ``TRIOPROXY_TS_KEEPALIVE``."""
    xtream: XtreamStream | None = None
    """A channel of the list, by its Xtream stream id (then ``source`` is None)."""
    relay: tuple[KeyType, str] | None = None
    """A relay of another instance asks for AceStream content (key type, key) it owns."""


FORMAT = "format"
"""The query parameter choosing ``hls`` or ``ts``."""
KEEPALIVE = "keepalive"
"""The query parameter of TS URLs: seconds of silence before null packets (``0``: nothing
before the first media)."""
MAX_KEEPALIVE = 3600.0


def _keepalive(args: Mapping[str, str]) -> float | None:
    text = args.get(KEEPALIVE)
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        value = math.nan
    if not 0 <= value <= MAX_KEEPALIVE:  # NaN too
        raise BadRequest(f"keepalive= must be seconds from 0 to {MAX_KEEPALIVE:g}")
    return value


def _format(args: Mapping[str, str], default: Literal["HLS", "TS"]) -> Literal["hls", "ts"]:
    """``format=`` of a request; without one, ``default``; anything but hls or ts is a 400."""
    return parse_format(args.get(FORMAT), default)


def match_ts(
    path: str, args: Mapping[str, str], stream_mode: Literal["HLS", "TS"]
) -> TsRequest | None:
    """The MPEG-TS stream ``path`` with query ``args`` asks for, or None when it is not one.

    ``stream_mode`` (``HLS`` or ``TS``) is what ``/ace/getstream`` answers without ``format``.
    """
    if path == GETSTREAM.rule:
        wanted = _format(args, stream_mode) == "ts"
        return TsRequest(None, _keepalive(args)) if wanted else None
    if path == MANIFEST.rule:
        return TsRequest(None, _keepalive(args)) if _format(args, "HLS") == "ts" else None
    found = SOURCE_TS.match(path)
    if found is not None:
        return TsRequest(found["name"], _keepalive(args))
    found = SOURCE.match(path)
    if found is not None and _format(args, "HLS") == "ts":
        return TsRequest(found["name"], _keepalive(args))
    found = XTREAM_TS.match(path)
    if found is not None:
        xtream = XtreamStream(found["user"], found["password"], int(found["stream_id"]))
        return TsRequest(None, _keepalive(args), xtream)
    found = RELAY.match(path)
    if found is not None:
        key_type: KeyType = "infohash" if found["key_type"] == "infohash" else "content_id"
        return TsRequest(None, 0.0, relay=(key_type, found["key"]))
    return None


def ts_url(root_path: str, key: str, *, infohash: bool = False, keepalive: bool = True) -> str:
    """The MPEG-TS URL of AceStream content ``key`` (a content id, or an infohash)."""
    query = {"infohash" if infohash else "id": key, FORMAT: "ts"}
    if not keepalive:
        query[KEEPALIVE] = "0"
    return f"{GETSTREAM.build(root_path)}?{urlencode(query)}"


def source_ts_url(root_path: str, name: str, *, keepalive: bool = True) -> str:
    """The MPEG-TS URL of the configured source ``name``."""
    url = SOURCE_TS.build(root_path, name=name)
    return url if keepalive else f"{url}?{KEEPALIVE}=0"
