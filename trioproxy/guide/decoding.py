"""A guide's bytes as they arrive → its XML: gzip (one member or several) or zlib, decoded in
pieces of bounded size, or plain XML passed through. The first bytes tell which: a server may
send a ``.xml.gz`` file as it is, or gzip-encode the transfer, or neither.

What it decodes to is bounded too (``limit``): a small gzip body can decode to gigabytes.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

from .xmltv import GuideError

__all__ = ["PIECE", "Decoder"]

PIECE = 64 << 10
"""Bytes of XML each step decodes at most."""
_GZIP = b"\x1f\x8b"
_AUTO = 32 + zlib.MAX_WBITS
"""zlib's window bits that read a gzip or a zlib header, whichever comes."""


def _compressed(head: bytes) -> bool:
    """Whether a body starting with ``head`` (2 bytes) is gzip or zlib; XML starts otherwise."""
    return head == _GZIP or (head[0] & 0x0F == 8 and int.from_bytes(head, "big") % 31 == 0)


class Decoder:
    """Feed it a body's bytes (:meth:`feed`) and iterate what they decode to; :meth:`close` at
    the end. ``limit``: decoded bytes at most; past it, :class:`GuideError`."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self.decoded = 0
        """Bytes decoded so far."""
        self._head = b""
        self._inflate: zlib._Decompress | None = None
        self._plain = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The XML ``data`` decodes to, in pieces of at most :data:`PIECE` bytes (plain XML in
        the pieces it came in)."""
        if not self._plain and self._inflate is None:
            data = self._head + data
            if len(data) < 2:
                self._head = data
                return
            self._head = b""
            if _compressed(data[:2]):
                self._inflate = zlib.decompressobj(_AUTO)
            else:
                self._plain = True
        if self._plain:
            if data:
                yield self._count(data)
            return
        yield from self._decompress(data)

    def close(self) -> None:
        """The body ended: a compressed one must have ended where its stream does."""
        if self._head:
            raise GuideError("the guide is a single byte")
        if self._inflate is not None and not self._inflate.eof:
            raise GuideError("the compressed guide is cut short")

    def _decompress(self, data: bytes) -> Iterator[bytes]:
        inflate = self._inflate
        assert inflate is not None
        while True:
            if inflate.eof:
                if not data.startswith(_GZIP[:1]) and not data.strip(b"\0\r\n\t "):
                    return  # the end, maybe with padding after the last member
                inflate = self._inflate = zlib.decompressobj(_AUTO)  # another gzip member
            try:
                piece = inflate.decompress(data, PIECE)
            except zlib.error as exc:
                raise GuideError(f"the compressed guide is corrupt: {exc}") from None
            if piece:
                yield self._count(piece)
            data = inflate.unused_data if inflate.eof else inflate.unconsumed_tail
            if not data and len(piece) < PIECE:
                return  # all input read, and no output left behind a full piece

    def _count(self, piece: bytes) -> bytes:
        self.decoded += len(piece)
        if self.decoded > self._limit:
            raise GuideError(f"the guide decodes to more than {self._limit} bytes")
        return piece
