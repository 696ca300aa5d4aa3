"""A strict reader of extended M3U channel lists, as IPTV apps read them (for the tests)."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Entry", "Listing", "kodi_name", "read_m3u"]

_ATTRIBUTES = re.compile(r'(?:\s+[A-Za-z0-9_-]+="[^"]*")*')
_ATTRIBUTE = re.compile(r'([A-Za-z0-9_-]+)="([^"]*)"')
_EXTINF = re.compile(r"#EXTINF:(-?[0-9]+)")


@dataclass(frozen=True)
class Entry:
    duration: int
    attributes: dict[str, str]
    name: str
    url: str


@dataclass(frozen=True)
class Listing:
    attributes: dict[str, str]
    """Of the ``#EXTM3U`` header."""
    entries: list[Entry]


def _attributes(text: str) -> tuple[dict[str, str], str]:
    """The attributes at the start of ``text`` and what follows them."""
    found = _ATTRIBUTES.match(text)
    assert found is not None
    return dict(_ATTRIBUTE.findall(found.group())), text[found.end() :]


def kodi_name(line: str) -> str:
    """The name Kodi's IPTV Simple takes from an ``#EXTINF`` line: after the last ``"`` if a
    comma follows it, else after the last comma."""
    quote = line.rfind('"')
    comma = line.rfind(",")
    if quote >= 0 and line[quote + 1 :].strip().startswith(","):
        comma = quote + 1 + line[quote + 1 :].index(",")
    return line[comma + 1 :].strip()


def read_m3u(text: str) -> Listing:
    """Every line checked: a header, then ``#EXTINF`` and URL lines in turn, nothing else."""
    assert text.endswith("\n"), "the file ends with a line break"
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f]", text), "no control characters but \\n"
    lines = text[:-1].split("\n")
    assert lines[0].startswith("#EXTM3U")
    header, rest = _attributes(lines[0].removeprefix("#EXTM3U"))
    assert rest == "", f"the header is only attributes: {lines[0]!r}"
    body = lines[1:]
    assert len(body) % 2 == 0, "one #EXTINF line and one URL line per channel"
    entries = []
    for info, url in zip(body[::2], body[1::2], strict=True):
        found = _EXTINF.match(info)
        assert found is not None, f"not an #EXTINF line: {info!r}"
        attributes, rest = _attributes(info[found.end() :])
        assert rest.startswith(","), f"attributes, then a comma and the name: {info!r}"
        name = rest[1:]
        assert kodi_name(info) == name, f"Kodi reads another name from {info!r}"
        assert re.fullmatch(r"[^#\s]\S*", url), f"not a URL line: {url!r}"
        entries.append(Entry(int(found.group(1)), attributes, name, url))
    return Listing(header, entries)
