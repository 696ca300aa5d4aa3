"""Bounds on what is read of an upstream body, by kind, and the bounded gzip decoder.

Playlists, segments, init sections and keys each have a bound (:class:`ReadLimits`, set by the
``TRIOPROXY_MAX_*_BYTES`` settings); an engine's JSON answers a fixed one
(:data:`API_BODY_LIMIT`). Pure: no I/O.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Literal

import httpx

from ..errors import UpstreamUnusable

__all__ = [
    "API_BODY_LIMIT",
    "LIMIT_SETTINGS",
    "BodyKind",
    "BodyTooLarge",
    "Gunzip",
    "MediaKind",
    "ReadLimits",
    "content_encoding",
]

MediaKind = Literal["segment", "init", "key"]
BodyKind = Literal["playlist", "segment", "init", "key"]


API_BODY_LIMIT = 1 << 20
"""Bytes of an engine's JSON answer (session open, stop) read at most: a few hundred are usual."""
LIMIT_SETTINGS: dict[BodyKind, str] = {
    "playlist": "TRIOPROXY_MAX_PLAYLIST_BYTES",
    "segment": "TRIOPROXY_MAX_SEGMENT_BYTES",
    "init": "TRIOPROXY_MAX_INIT_BYTES",
    "key": "TRIOPROXY_MAX_KEY_BYTES",
}
"""The setting that raises each bound, named in the errors."""


@dataclass(frozen=True, slots=True)
class ReadLimits:
    """Bytes read at most of one upstream body, by kind (``TRIOPROXY_MAX_*_BYTES``)."""

    playlist: int = 8 << 20
    """A 10,000-segment DVR playlist with long tokenised URIs is 2-5 MB."""
    segment: int = 64 << 20
    """8 s at 40 Mbit/s is 40 MB."""
    init: int = 1 << 20
    key: int = 4 << 10

    def of(self, kind: BodyKind) -> int:
        limit: int = getattr(self, kind)
        return limit


class BodyTooLarge(UpstreamUnusable):
    """An upstream body went past its bound; it was not read further."""


class Gunzip:
    """gzip decoding with a bound on each step's output (one or more gzip members)."""

    def __init__(self) -> None:
        self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def feed(self, data: bytes, at_most: int) -> bytes:
        """What ``data`` decodes to, at most ``at_most`` bytes of it (the rest is dropped)."""
        out = []
        while data and at_most > 0:
            if self._inflate.eof:  # another gzip member follows
                self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
            piece = self._inflate.decompress(data, at_most)
            out.append(piece)
            at_most -= len(piece)
            inflate = self._inflate
            data = inflate.unused_data if inflate.eof else inflate.unconsumed_tail
        return b"".join(out)


def content_encoding(response: httpx.Response) -> str:
    encoding = response.headers.get("content-encoding", "").strip().lower()
    return "" if encoding == "identity" else encoding
