"""Request heads for the lean path, parsed from bytes: no I/O, no Trio.

:func:`head_end` finds where the first request head in the bytes received so far ends (the
blank line, as h11 finds it); :func:`parse_head` parses that head with ``httptools`` (llhttp,
the parser uvicorn uses) into a :class:`Head`, or says None: a head the lean path leaves to
Hypercorn, which answers it as it always did. That is anything but a plain HTTP/1.1 request
without a body in origin form — another version, a request body (``Content-Length`` other than
0, ``Transfer-Encoding``), ``Upgrade``, ``Expect``, no single ``Host``, a request target with
bytes h11 refuses, bare-LF line ends — and anything llhttp cannot parse. So a request the lean
path answers is one h11 would have taken as it is, and every doubtful one gets the answer it
got before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

import httptools

__all__ = ["MAX_HEAD", "Head", "head_end", "parse_head"]

MAX_HEAD = 16 * 1024
"""The longest request head read before handing the connection on (as Hypercorn's
``h11_max_incomplete_size``, which then refuses it)."""

_END = re.compile(rb"\n\r?\n")
_TARGET = re.compile(rb"/[\x21-\x7e]*")
"""An origin-form target of visible ASCII (h11's ``request-target``)."""
_PASSED = frozenset({b"transfer-encoding", b"upgrade", b"expect"})
"""Headers of requests the lean path passes on whatever their value."""


@dataclass(frozen=True, slots=True)
class Head:
    """A request head the lean path may answer."""

    method: str
    path: str
    """The target's path, percent-decoded (as Hypercorn's ``scope["path"]``)."""
    query: bytes
    """The raw query string."""
    headers: list[tuple[bytes, bytes]]
    """Every header, names lower-cased, in order."""
    keep_alive: bool
    """False when the client asked to close after the answer (``Connection: close``)."""

    def header(self, name: bytes) -> bytes | None:
        """The first value of header ``name`` (lower case), if any."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


def head_end(data: bytes | bytearray) -> int | None:
    """How many bytes of ``data`` the first request head takes, blank line included; None while
    it is incomplete."""
    found = _END.search(data)
    return None if found is None else found.end()


class _Collect:
    __slots__ = ("complete", "headers", "url")

    def __init__(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.complete = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_message_complete(self) -> None:
        self.complete = True


def parse_head(data: bytes) -> Head | None:
    """The request head ``data`` (as :func:`head_end` cut it), or None when the lean path must
    leave it to Hypercorn."""
    if b"\r\n\r\n" not in data[-4:] or data.count(b"\n") != data.count(b"\r\n"):
        return None  # bare LF line ends, or leading blank lines: h11's to judge
    collect = _Collect()
    parser = httptools.HttpRequestParser(collect)
    try:
        parser.feed_data(data)
    except (httptools.HttpParserError, httptools.HttpParserUpgrade):
        return None
    if not collect.complete or parser.get_http_version() != "1.1":
        return None  # a body follows (chunked), or HTTP/1.0
    target = collect.url
    if _TARGET.fullmatch(target) is None:
        return None
    hosts = 0
    keep_alive = True
    for name, value in collect.headers:
        if name in _PASSED:
            return None
        if name == b"host":
            hosts += 1
        elif name == b"content-length" and value.strip() != b"0":
            return None
        elif name == b"connection" and b"close" in value.lower().replace(b" ", b"").split(b","):
            keep_alive = False
    if hosts != 1:
        return None
    path, _, query = target.partition(b"?")
    method = parser.get_method().decode("ascii")
    return Head(method, unquote(path.decode("ascii")), query, collect.headers, keep_alive)
