"""The M3U8 text under HLS playlists: what the ``m3u8`` library reads for us, and what it does not.

:func:`load` hands the text to :func:`m3u8.loads` once it has done what m3u8 leaves undone: the
``#EXTM3U`` header check (m3u8 takes HTML or garbage for an empty playlist), a byte order mark,
IPTV-style ``#EXTINF:5.0 tvg-id="…",Title`` lines (m3u8 6 reads the attributes as part of the
duration) and turning every way m3u8 fails on junk into :class:`PlaylistError`.
:func:`uri_lines` counts the URIs of that text (m3u8 skips a URI without ``#EXTINF`` silently),
:func:`date_time` says which program date-times m3u8 can be given, and :func:`resolve` makes a
listed URI absolute and refuses what is not a usable http(s) URL.

:func:`attribute_list` reads one tag's attributes as listed, names and values untouched but for
quotes; :func:`lines` reads a whole playlist as tags and URIs (our own output, in tests).
:func:`quoted` and :func:`format_attributes` write attribute lists.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import m3u8

__all__ = [
    "Line",
    "PlaylistError",
    "TagHook",
    "attribute_list",
    "date_time",
    "format_attributes",
    "lines",
    "load",
    "normalized",
    "quoted",
    "resolve",
    "uri_lines",
]


class PlaylistError(ValueError):
    """The upstream answered something that is not a usable HLS playlist."""


class TagHook(Protocol):
    """m3u8's ``custom_tags_parser``: sees each ``#`` line first; ``True`` means m3u8 skips it."""

    def __call__(
        self, line: str, lineno: int, data: dict[str, Any], state: dict[str, Any]
    ) -> bool: ...


_HEADER = re.compile(r"[^\S\n]*#EXTM3U[^\S\n]*(?:\n|$)")
_IPTV_EXTINF = re.compile(r"^([^\S\n]*#EXTINF:[^\S\n]*[^,\s]+)[^\S\n]+[^,\n]*", re.MULTILINE)
"""``#EXTINF:5.0 tvg-id="news",Title``: the attributes between duration and title."""
_URI_LINE = re.compile(r"^[^\S\n]*[^#\s]", re.MULTILINE)

_M3U8_FAILURES = (
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    OverflowError,
    m3u8.ParseError,
)
"""What m3u8 raises on text it cannot read: it checks nothing before it converts."""


def normalized(text: str) -> str:
    """Without a byte order mark, lines split where m3u8 splits them and joined by ``\\n``."""
    text = "\n".join(text.lstrip("\ufeff").splitlines()).lstrip()
    if not _HEADER.match(text):
        raise PlaylistError("not an HLS playlist (no #EXTM3U header)")
    return text


def uri_lines(text: str) -> int:
    """How many lines of ``text`` (as :func:`load` passes it on) are URIs, not tags or blank."""
    return len(_URI_LINE.findall(text))


def load(text: str, url: str, hook: TagHook | None = None) -> tuple[m3u8.M3U8, str]:
    """m3u8's model of the playlist fetched from ``url``, and the text it was read from.

    ``hook`` sees each tag line before m3u8 does (m3u8's ``custom_tags_parser``).
    """
    text = _IPTV_EXTINF.sub(r"\1", normalized(text))
    try:
        return m3u8.loads(text, uri=url, custom_tags_parser=hook), text
    except PlaylistError:
        raise
    except _M3U8_FAILURES as exc:
        raise PlaylistError(f"unreadable playlist: {type(exc).__name__}: {exc}"[:200]) from None


def date_time(value: str) -> datetime | None:
    """An ``#EXT-X-PROGRAM-DATE-TIME`` value we keep: parseable, with a zone, not near year 9999."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None or moment.year >= 9000:
        return None  # a date m3u8 could not carry on to later segments without overflowing
    return moment


@dataclass(frozen=True, slots=True)
class Line:
    """One meaningful line: a tag (``name`` and ``value``) or a URI (``name`` empty)."""

    name: str
    value: str

    @property
    def is_uri(self) -> bool:
        return not self.name


def lines(text: str) -> Iterator[Line]:
    """The tags and URIs of a playlist, once its ``#EXTM3U`` header is checked; no comments."""
    rows = (row.strip() for row in normalized(text).split("\n"))
    next(rows)  # the header
    for row in rows:
        if row.startswith("#EXT"):
            name, _, value = row[1:].partition(":")
            yield Line(name.upper(), value)
        elif row and not row.startswith("#"):
            yield Line("", row)


_ATTRIBUTE = re.compile(r'\s*([A-Za-z0-9-]+)\s*=\s*("[^"\r\n]*"|[^,]*)\s*(?:,|$)')


def attribute_list(value: str) -> dict[str, str]:
    """An attribute list (§4.2) as a dict: names upper-cased, quotes removed. Junk is skipped."""
    result: dict[str, str] = {}
    position = 0
    while position < len(value):
        match = _ATTRIBUTE.match(value, position)
        if match is None:  # junk: skip to the next comma outside quotes
            comma = value.find(",", position)
            if comma < 0:
                break
            position = comma + 1
            continue
        name, raw = match.group(1).upper(), match.group(2).strip()
        if len(raw) >= 2 and raw.startswith('"') and raw.endswith('"'):
            raw = raw[1:-1]
        result.setdefault(name, raw)
        if match.end() == position:
            break
        position = match.end()
    return result


def quoted(text: str) -> str:
    """A quoted-string attribute value; characters §4.2 forbids inside one are dropped."""
    return '"' + text.replace('"', "").replace("\n", "").replace("\r", "") + '"'


def format_attributes(attributes: dict[str, str]) -> str:
    """``NAME=value,...`` with values already formatted (quoted where needed)."""
    return ",".join(f"{name}={value}" for name, value in attributes.items())


def resolve(base: str, uri: str) -> str:
    """An absolute http(s) URL for ``uri`` as listed in the playlist fetched from ``base``.

    Joined with the playlist's own URL (RFC 3986 §5.2), not with its directory as m3u8's
    ``absolute_uri`` does, so that a query-only reference keeps the playlist's path.
    """
    try:
        absolute = urljoin(base, uri.strip())
        parts = urlsplit(absolute)
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError:
        raise PlaylistError(f"URI {uri[:80]!r} is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PlaylistError(f"URI {uri[:80]!r} is not an http(s) URL")
    return absolute
