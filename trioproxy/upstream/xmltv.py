"""Fetching one XMLTV guide: streamed through the decoder and the filter of :mod:`trioproxy.guide`
as it arrives, bounded in bytes; never held whole.

:func:`fetch_guide` takes no timeout: its caller puts a deadline around it. Every failure
leaves as :class:`GuideFetchFailed`, whose message names the source by its host only (a
guide's URL often carries an account's key).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import httpx

from ..guide import Decoder, GuideError, GuidePart, XmltvFilter
from .bodies import content_encoding
from .reading import read_body
from .session import shown

__all__ = ["GuideFetchFailed", "GuideLimits", "fetch_guide"]


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

        def take(chunk: bytes) -> bool:
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
            return False

        await read_body(response, take)
        decoder.close()
        return xmltv.close(), received
    except GuideError as exc:
        raise GuideFetchFailed(f"{source}: {exc}") from None
    except (httpx.HTTPError, httpx.StreamError) as exc:
        raise GuideFetchFailed(f"{source}: {_describe(exc)}") from exc
    finally:
        await response.aclose()


def _describe(exc: Exception) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.ConnectError):
        return "cannot connect"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the connection broke off"
    return type(exc).__name__
