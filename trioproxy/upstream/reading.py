"""Reading an upstream body chunk by chunk, and stopping early without leaving anything behind.

Leaving httpx's body loop early (``break``, or an exception raised in its body) would leave
httpx's and httpcore's nested async generators suspended, for the garbage collector (a
``ResourceWarning`` each). So :func:`read_body` never does: when ``take`` stops the body (or
raises), the response is closed first and the loop reads on: the next read fails at the bottom
of the stack, and that error unwinds every layer. ``take`` is synchronous, so nothing else can
raise or wait inside the loop.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import cast

import httpx

__all__ = ["DRAIN_CHUNKS", "read_body"]

DRAIN_CHUNKS = 8
"""Reads tried after the response was closed early, for the transport's read to fail."""


async def read_body(response: httpx.Response, take: Callable[[bytes], bool]) -> bool:
    """Hand ``response``'s body to ``take`` chunk by chunk until ``take`` says stop (returns
    True; so does this) or the body ends (False).

    What ``take`` raises is raised once the layers below have unwound. A failed read raises its
    ``httpx.HTTPError`` (or ``httpx.StreamError``), unless ``take`` had stopped the body.
    """
    if response.is_stream_consumed:  # a body some transport had read already
        return take(response.content)
    stopped = False
    error: Exception | None = None
    drained = 0
    try:
        raw = cast(AsyncGenerator[bytes, None], response.aiter_raw())  # it is one
        async with aclosing(raw) as chunks:
            async for chunk in chunks:
                if stopped:
                    drained += 1
                    if drained >= DRAIN_CHUNKS:
                        break
                    continue
                try:
                    stopped = take(chunk)
                except Exception as exc:  # raised once the layers below have unwound
                    error, stopped = exc, True
                if stopped:
                    await response.aclose()
    except (httpx.HTTPError, httpx.StreamError):
        if not stopped:
            raise
    if error is not None:
        raise error
    return stopped
