"""Named generic HLS sources: any HLS origin the operator configured, served like engine streams.

``TRIOPROXY_SOURCES=name=url,name2=url2`` and ``TRIOPROXY_SOURCES_FILE`` (one ``name url`` a
line, ``#`` comments) name them; players ask for ``GET /sources/<name>.m3u8``. Only configured
sources exist: the proxy never fetches a URL a client supplies.
"""

from __future__ import annotations

import re
import uuid
from urllib.parse import urlsplit

from .engine import Engine, Session

__all__ = [
    "RENDITION_NAME",
    "SOURCE_PREFIX",
    "is_source_name",
    "parse_source_list",
    "parse_sources_file",
    "rendition_name",
    "source_engine",
    "source_session",
]

SOURCE_PREFIX = "source/"
"""Channel names of sources are this prefix and the source's name."""

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
RENDITION_NAME = re.compile(r"([0-9a-f]{40}|source/[a-z0-9][a-z0-9_-]{0,63})\.r([0-9]{1,2})")
"""Channel names of renditions: the channel whose variant lists them, ``.r`` and a number."""


def rendition_name(parent: str, index: int) -> str:
    return f"{parent}.r{index}"


def is_source_name(text: str) -> bool:
    return _NAME.fullmatch(text) is not None


def _source(name: str, url: str) -> tuple[str, str]:
    name, url = name.strip(), url.strip()
    if not is_source_name(name):
        raise ValueError(f"source name {name[:40]!r}: use 1-64 of a-z 0-9 _ - (lower case)")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"source {name}: {url[:80]!r} is not an http(s) URL")
    return name, url


def _unique(pairs: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    seen: set[str] = set()
    for name, _ in pairs:
        if name in seen:
            raise ValueError(f"source {name} is named twice")
        seen.add(name)
    return tuple(pairs)


def parse_source_list(text: str) -> tuple[tuple[str, str], ...]:
    """``name=url,name2=url2`` (URLs may not contain commas)."""
    pairs = []
    for item in text.split(","):
        if not item.strip():
            continue
        name, sep, url = item.partition("=")
        if not sep:
            raise ValueError(f"{item.strip()[:40]!r} is not name=url")
        pairs.append(_source(name, url))
    return _unique(pairs)


def parse_sources_file(text: str) -> tuple[tuple[str, str], ...]:
    """One ``name url`` a line; blank lines and ``#`` comments are skipped."""
    pairs = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 2:
            raise ValueError(f"line {number}: expected 'name url'")
        pairs.append(_source(fields[0], fields[1]))
    return _unique(pairs)


def source_engine(url: str) -> Engine:
    """The origin of a source, in the shape events describe an engine with."""
    parts = urlsplit(url)
    return Engine(base_url=f"{parts.scheme}://{parts.netloc}")


def source_session(url: str) -> Session:
    """A source needs no session opened: its playlist is the playback URL; nothing to stop."""
    session_id = str(uuid.uuid4())
    return Session(
        playback_url=url,
        stat_url="",
        command_url="",
        playback_session_id=session_id,
        is_live=1,
        pid=session_id,
    )
