"""A stream that does not end, as an engine session's MPEG-TS playback is: read a piece at a time.

:meth:`~trioproxy.upstream.engine.EngineClient.open_stream` opens one; :meth:`MediaStream.read`
hands on what arrives, in pieces of at most :data:`READ_BYTES`, each counted as received. Every
failure to read leaves as :class:`~trioproxy.errors.EngineError`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import cast

import httpx

from ..errors import EngineError
from .session import shown

__all__ = ["READ_BYTES", "MediaStream"]

READ_BYTES = 64 * 1024
"""Bytes handed on at most at once, however much one read brought."""
_DRAIN_CHUNKS = 8
"""Reads tried after the response was closed early, for the transport's read to fail."""


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

        Leaving the loop early would leave httpx's and httpcore's nested async generators
        suspended, for the garbage collector; so, as the engine client does, the response is
        closed first and the loop goes on: the next read fails at the bottom of the stack, and
        that error unwinds every layer.
        """
        stopped = False
        error: Exception | None = None
        drained = 0
        try:
            raw = cast(AsyncGenerator[bytes, None], self._response.aiter_raw())  # it is one
            async with aclosing(raw) as arriving:
                async for chunk in arriving:
                    if stopped:
                        drained += 1
                        if drained >= _DRAIN_CHUNKS:
                            break
                        continue
                    self._count(len(chunk))
                    try:
                        stopped = any(
                            take(chunk[at : at + READ_BYTES])
                            for at in range(0, len(chunk), READ_BYTES)
                        )
                    except Exception as exc:  # raised once the layers below have unwound
                        error, stopped = exc, True
                    if stopped:
                        await self._response.aclose()
        except (httpx.HTTPError, httpx.StreamError) as exc:
            if not stopped:
                what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                raise EngineError(f"{shown(self.url)}: stream broken ({what})") from exc
        if error is not None:
            raise error
        return stopped
