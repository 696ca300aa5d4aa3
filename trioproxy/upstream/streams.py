"""A stream that does not end, as an engine session's MPEG-TS playback is: read a piece at a time.

:meth:`~trioproxy.upstream.engine.EngineClient.open_stream` opens one; :meth:`MediaStream.read`
hands on what arrives, in pieces of at most :data:`READ_BYTES`, each counted as received. Every
failure to read leaves as :class:`~trioproxy.errors.EngineError`.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from ..errors import EngineError
from .reading import read_body
from .session import shown

__all__ = ["READ_BYTES", "MediaStream"]

READ_BYTES = 64 * 1024
"""Bytes handed on at most at once, however much one read brought."""


class MediaStream:
    """An open response whose body is read as it arrives."""

    def __init__(self, response: httpx.Response, count: Callable[[int], None]) -> None:
        self._response = response
        self._count = count

    @property
    def content_type(self) -> str:
        return str(self._response.headers.get("content-type", "")).lower()

    @property
    def url(self) -> str:
        """The final URL, after redirects."""
        return str(self._response.url)

    async def read(self, take: Callable[[bytes], bool]) -> bool:
        """Hand the body to ``take`` as it arrives, in pieces of at most :data:`READ_BYTES`,
        until ``take`` says stop (returns True; then True is returned) or the body ends (False).
        A broken connection raises ``EngineError``; what ``take`` raises is raised.

        How it stops early: :func:`.reading.read_body`.
        """

        def pieces(chunk: bytes) -> bool:
            self._count(len(chunk))
            return any(take(chunk[at : at + READ_BYTES]) for at in range(0, len(chunk), READ_BYTES))

        try:
            return await read_body(self._response, pieces)
        except (httpx.HTTPError, httpx.StreamError) as exc:
            what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise EngineError(f"{shown(self.url)}: stream broken ({what})") from exc
