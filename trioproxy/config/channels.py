"""The channel list behind ``/playlist.m3u`` (``TRIOPROXY_CHANNELS_FILE``). Pure parsing.

A CSV file (RFC 4180 quoting: a field with a comma or a ``"`` goes in double quotes, a ``"``
inside one is doubled), one channel a line::

    # name, stream, tvg-id, logo, group    (the last three may be left out or empty)
    BBC One,0123456789abcdef0123456789abcdef01234567,bbc1.uk,https://logos.example/bbc1.png,UK
    "News, Weather",infohash:89abcdef0123456789abcdef0123456789abcdef,,,News
    Local news,source:news

``stream`` is a content id (40 hex digits, or ``acestream://<id>``), ``infohash:<40 hex>``, or
``source:<name>`` for a source of ``TRIOPROXY_SOURCES``/``TRIOPROXY_SOURCES_FILE``. Blank lines
and lines starting with ``#`` are skipped; so is a first line ``name,stream,...`` (a header).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from .sources import is_source_name

__all__ = ["ChannelEntry", "StreamKind", "parse_channels_file"]

StreamKind = Literal["content_id", "infohash", "source"]

_HEX40 = re.compile(r"[0-9a-fA-F]{40}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")
_COLUMNS = ("name", "stream", "tvg-id", "logo", "group")
_MAX_TEXT = 200
_MAX_URL = 2000


@dataclass(frozen=True, slots=True)
class ChannelEntry:
    """One channel of the list, as written on line ``line`` of the file."""

    name: str
    kind: StreamKind
    key: str
    """The content id or infohash (lower case), or the source's name."""
    tvg_id: str = ""
    logo: str = ""
    group: str = ""
    line: int = 0


def _text(column: str, value: str, limit: int = _MAX_TEXT) -> str:
    value = value.strip()
    if _CONTROL.search(value):
        raise ValueError(f"{column} contains a control character (a tab or a line break?)")
    if len(value) > limit:
        raise ValueError(f"{column} is longer than {limit} characters")
    return value


def _stream(value: str) -> tuple[StreamKind, str]:
    value = value.strip()
    scheme, sep, rest = value.partition(":")
    scheme = scheme.lower() if sep else ""
    if not sep and _HEX40.fullmatch(value):
        return "content_id", value.lower()
    if scheme == "acestream" and rest.startswith("//") and _HEX40.fullmatch(rest[2:]):
        return "content_id", rest[2:].lower()
    if scheme == "infohash" and _HEX40.fullmatch(rest):
        return "infohash", rest.lower()
    if scheme == "source" and is_source_name(rest):
        return "source", rest
    raise ValueError(
        f"stream {value[:60]!r} is not a content id (40 hex digits or acestream://<id>), "
        "infohash:<40 hex digits> or source:<name>"
    )


def _logo(value: str) -> str:
    value = _text("logo", value, _MAX_URL)
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or " " in value:
        raise ValueError(f"logo {value[:60]!r} is not an http(s) URL")
    return value


def _entry(fields: list[str], line: int) -> ChannelEntry:
    if len(fields) < 2 or len(fields) > len(_COLUMNS):
        raise ValueError(f"expected {', '.join(_COLUMNS)} (the last three optional)")
    fields = fields + [""] * (len(_COLUMNS) - len(fields))
    name = _text("name", fields[0])
    if not name:
        raise ValueError("the name is empty")
    kind, key = _stream(fields[1])
    return ChannelEntry(
        name=name,
        kind=kind,
        key=key,
        tvg_id=_text("tvg-id", fields[2]),
        logo=_logo(fields[3]),
        group=_text("group", fields[4]),
        line=line,
    )


def parse_channels_file(text: str) -> tuple[ChannelEntry, ...]:
    """The channels listed in ``text``; a :class:`ValueError` names the first bad line."""
    lines = text.removeprefix("\ufeff").splitlines()
    channels: list[ChannelEntry] = []
    header_allowed = True
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            # One line is one record: a quoted field cannot span lines (names have no breaks).
            fields = next(csv.reader([line], strict=True, skipinitialspace=True))
        except csv.Error as exc:
            raise ValueError(f"line {number}: {exc}") from None
        if header_allowed and [f.strip().lower() for f in fields[:2]] == ["name", "stream"]:
            header_allowed = False
            continue
        header_allowed = False
        try:
            channels.append(_entry(fields, number))
        except ValueError as exc:
            raise ValueError(f"line {number}: {exc}") from None
    return tuple(channels)
