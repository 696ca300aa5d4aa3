"""The M3U8 text format underneath HLS playlists (RFC 8216 §4.1–4.2). Pure functions, no I/O.

Reading is lenient about what real origins send (a byte order mark, CRLF or CR line ends, blank
lines, spaces around lines, unknown tags) and strict about what we rely on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

__all__ = [
    "Line",
    "PlaylistError",
    "attribute_list",
    "format_attributes",
    "lines",
    "quoted",
    "resolve",
]


class PlaylistError(ValueError):
    """The upstream answered something that is not a usable HLS playlist."""


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
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    rows = (row.strip() for row in text.split("\n"))
    rows = (row for row in rows if row)
    if next(rows, None) != "#EXTM3U":
        raise PlaylistError("not an HLS playlist (no #EXTM3U header)")
    for row in rows:
        if row.startswith("#EXT"):
            name, _, value = row[1:].partition(":")
            yield Line(name.upper(), value)
        elif not row.startswith("#"):
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
    """An absolute http(s) URL for ``uri`` as listed in the playlist fetched from ``base``."""
    try:
        absolute = urljoin(base, uri.strip())
        parts = urlsplit(absolute)
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError:
        raise PlaylistError(f"URI {uri[:80]!r} is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PlaylistError(f"URI {uri[:80]!r} is not an http(s) URL")
    return absolute
