"""Fetching one XMLTV guide: streamed through the decoder and the filter of :mod:`trioproxy.guide`
as it arrives, bounded in bytes; never held whole.

:func:`fetch_guide` takes no timeout: its caller puts a deadline around it. Every failure
leaves as :class:`GuideFetchFailed`, whose message names the source by its host only (a
guide's URL often carries an account's key).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Iterable
from contextlib import aclosing
from dataclasses import dataclass
from typing import cast

import httpx

from ..guide import Decoder, GuideError, GuidePart, XmltvFilter
from .bodies import content_encoding
from .session import shown

__all__ = ["GuideFetchFailed", "GuideLimits", "fetch_guide"]

_DRAIN_CHUNKS = 4
"""Chunks read past a refusal before giving up on the body (see :func:`_read`)."""


class GuideFetchFailed(Exception):
    """A guide could not be had; ``str()`` says why, naming its source by host only."""


@dataclass(frozen=True, slots=True)
class GuideLimits:
    """Bounds on one fetch."""

    received: int
    """Bytes read at most, as they arrive (``TRIOPROXY_EPG_MAX_BYTES``)."""
    decoded: int
    """Bytes of XML a compressed guide may decode to."""
    kept: int
    """Characters of XML kept: the listed channels' part."""


async def fetch_guide(
    http: httpx.AsyncClient, url: str, wanted: Iterable[str], limits: GuideLimits
) -> tuple[GuidePart, int]:
    """The part of the guide at ``url`` that concerns the tvg-ids ``wanted``, and the bytes
    read; :class:`GuideFetchFailed` when the guide cannot be had whole."""
    source = shown(url)
    decoder = Decoder(limits.decoded)
    xmltv = XmltvFilter(wanted, max_kept=limits.kept)
    received = 0
    try:
        request = http.build_request("GET", url, headers={"Accept-Encoding": "gzip"})
        response = await http.send(request, stream=True, follow_redirects=True)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise GuideFetchFailed(f"{source}: {_describe(exc)}") from exc
    try:
        if response.status_code != 200:
            raise GuideFetchFailed(f"{source}: HTTP {response.status_code}")
        encoding = content_encoding(response)
        if encoding not in ("", "gzip", "x-gzip", "deflate"):
            raise GuideFetchFailed(f"{source}: arrived encoded as {encoding[:40]!r}, not gzip")

        def take(chunk: bytes) -> None:
            # Parsed as it comes, between reads: one read's worth at a time (a 64 KB gzip
            # read is ~1 MB of XML, parsed in ~10 ms).
            nonlocal received
            received += len(chunk)
            if received > limits.received:
                raise GuideError(
                    f"larger than {limits.received} bytes (TRIOPROXY_EPG_MAX_BYTES); refused"
                )
            for piece in decoder.feed(chunk):
                xmltv.feed(piece)

        await _read(response, take)
        decoder.close()
        return xmltv.close(), received
    except GuideError as exc:
        raise GuideFetchFailed(f"{source}: {exc}") from None
    except (httpx.HTTPError, httpx.StreamError) as exc:
        raise GuideFetchFailed(f"{source}: {_describe(exc)}") from exc
    finally:
        await response.aclose()


async def _read(response: httpx.Response, take: Callable[[bytes], None]) -> None:
    """Give the body to ``take`` chunk by chunk.

    Nothing but a read may raise or wait inside the loop: an exception raised in its body
    (``trio.Cancelled`` at a checkpoint too) would leave httpx's and httpcore's nested generators
    suspended, for the garbage collector. So ``take`` is synchronous, and when it refuses the
    body, the response is closed and the loop read on: the next read fails at the bottom of
    the stack and unwinds every layer; then the refusal is raised.
    """
    if response.is_stream_consumed:  # a body some transport had read already
        take(response.content)
        return
    refused: GuideError | None = None
    drained = 0
    try:
        raw = cast(AsyncGenerator[bytes, None], response.aiter_raw())  # it is one
        async with aclosing(raw) as chunks:
            async for chunk in chunks:
                if refused is None:
                    try:
                        take(chunk)
                    except GuideError as exc:
                        refused = exc
                        await response.aclose()
                    continue
                drained += 1
                if drained >= _DRAIN_CHUNKS:
                    break
    except (httpx.HTTPError, httpx.StreamError):
        if refused is None:
            raise
    if refused is not None:
        raise refused


def _describe(exc: Exception) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.ConnectError):
        return "cannot connect"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the connection broke off"
    return type(exc).__name__
