"""The guide as served: one XMLTV document of the listed channels, merged from every source.

Sources are taken in the order they are configured: a channel's ``<channel>`` element comes
from the first source that has one, its programmes from the first source that has programmes
for it (two guides of one channel would otherwise list every show twice). Channels follow the
channel list's order; a channel's programmes, their start times.

A guide of many channels is tens of megabytes: :class:`GuideBuilder` gzips and hashes it a step
at a time, so its caller can let other work run between steps.
"""

from __future__ import annotations

import hashlib
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .xmltv import GuidePart, Programme

__all__ = ["STEP", "Guide", "GuideBuilder", "build_guide", "render_part"]

STEP = 1 << 20
"""Bytes of the document each :meth:`GuideBuilder.step` gzips and hashes."""
_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n<tv generator-info-name="trioproxy">\n'
_TAIL = "</tv>\n"


@dataclass(frozen=True)
class Guide:
    """One XMLTV document, as bytes and gzipped, and what it lists."""

    document: bytes
    gzipped: bytes
    etag: str
    """A strong validator of :attr:`document` (``"…"``, quotes included)."""
    channels: int
    programmes: int
    _by_channel: dict[str, tuple[Programme, ...]] = field(default_factory=dict, repr=False)

    def upcoming(self, tvg_id: str, limit: int, now: float) -> list[dict[str, Any]]:
        """The programmes of channel ``tvg-id`` (any case) on air at ``now`` (UTC epoch
        seconds) or later, at most ``limit``, in order: ``title``, ``description``, ``start``
        and ``stop`` (UTC epoch seconds; ``stop`` None when the guide gives none)."""
        programmes = [p for p in self._by_channel.get(tvg_id.casefold(), ()) if p.start is not None]
        found: list[dict[str, Any]] = []
        for index, programme in enumerate(programmes):
            if len(found) >= limit:
                break
            # Without a stop time, a programme lasts until the next one starts.
            following = programmes[index + 1].start if index + 1 < len(programmes) else None
            end = programme.stop if programme.stop is not None else following
            if end is None or end > now:
                found.append(
                    {
                        "title": programme.title,
                        "description": programme.description,
                        "start": programme.start,
                        "stop": programme.stop,
                    }
                )
        return found


def _start_time(programme: Programme) -> float:
    return math.inf if programme.start is None else programme.start


def _grouped(part: GuidePart) -> dict[str, list[Programme]]:
    grouped: dict[str, list[Programme]] = {}
    for programme in part.programmes:
        grouped.setdefault(programme.channel, []).append(programme)
    return grouped


def _document(elements: list[str]) -> bytes:
    text = "\n".join(elements)
    return (_HEAD + text + ("\n" if text else "") + _TAIL).encode("utf-8")


def render_part(part: GuidePart) -> bytes:
    """``part`` alone as an XMLTV document, in its own order (what is cached of a source)."""
    return _document([*part.channels.values(), *(p.xml for p in part.programmes)])


class GuideBuilder:
    """The guide of the channels ``order`` names (tvg-ids, in the channel list's order) from
    ``parts``, the sources' filtered guides in the order they are configured. Call
    :meth:`step` until it returns True, then take :meth:`guide`."""

    def __init__(self, parts: Sequence[GuidePart], order: Sequence[str]) -> None:
        channels: list[str] = []
        by_channel: dict[str, tuple[Programme, ...]] = {}
        grouped = [_grouped(part) for part in parts]
        for tvg_id in dict.fromkeys(order):
            element = next((p.channels[tvg_id] for p in parts if tvg_id in p.channels), None)
            if element is not None:
                channels.append(element)
            programmes = next((group[tvg_id] for group in grouped if tvg_id in group), None)
            if programmes:
                # sorted() keeps the document's order among equal (or unreadable) starts.
                by_channel[tvg_id.casefold()] = tuple(sorted(programmes, key=_start_time))
        listed = [programme.xml for programmes in by_channel.values() for programme in programmes]
        self._document = _document([*channels, *listed])
        self._counts = (len(channels), len(listed))
        self._by_channel = by_channel
        self._gzip = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        self._hash = hashlib.sha256()
        self._gzipped: list[bytes] = []
        self._done = 0

    def step(self) -> bool:
        """Gzip and hash the next :data:`STEP` bytes of the document; True once all are."""
        if self._done >= len(self._document):
            return True
        piece = self._document[self._done : self._done + STEP]
        self._done += len(piece)
        self._hash.update(piece)
        self._gzipped.append(self._gzip.compress(piece))
        if self._done >= len(self._document):
            self._gzipped.append(self._gzip.flush())
            return True
        return False

    def guide(self) -> Guide:
        while not self.step():
            pass
        return Guide(
            document=self._document,
            gzipped=b"".join(self._gzipped),
            etag=f'"{self._hash.hexdigest()[:32]}"',
            channels=self._counts[0],
            programmes=self._counts[1],
            _by_channel=self._by_channel,
        )


def build_guide(parts: Sequence[GuidePart], order: Sequence[str]) -> Guide:
    """:class:`GuideBuilder`'s guide, in one go."""
    return GuideBuilder(parts, order).guide()
