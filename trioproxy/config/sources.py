"""The list of named HLS sources: ``TRIOPROXY_SOURCES=name=url,name2=url2`` and
``TRIOPROXY_SOURCES_FILE`` (one ``name url`` a line, ``#`` comments). Pure parsing."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

__all__ = ["is_source_name", "parse_source_list", "parse_sources_file"]

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


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
