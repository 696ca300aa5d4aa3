"""Errors a client can see: each carries its HTTP status, a short code and a message.

What a client sees of a message is :func:`redact`-ed: engine URLs (which carry session ids) are
left out; the operator's log keeps the whole message.
"""

from __future__ import annotations

import re

__all__ = [
    "BadRequest",
    "BufferTimeout",
    "ChannelFailed",
    "EngineError",
    "Forbidden",
    "LoopingStream",
    "NoEngineAvailable",
    "NotFound",
    "OverCapacity",
    "ProxyError",
    "Unauthorized",
    "UpstreamRefused",
    "redact",
]

_URL = re.compile(
    r"""(?:\s+(?:at|from|on|to|for\s+url))?  # the word that introduces the URL
        \s*(['"]?)[a-z][a-z0-9+.-]*://[^\s'"<>()]*[^\s'"<>():]\1  # the URL, maybe quoted
    """,
    re.IGNORECASE | re.VERBOSE,
)
_TIDY = ((re.compile(r":\s*:"), ":"), (re.compile(r"^\s*:\s*"), ""), (re.compile(r"\s{2,}"), " "))
REDACTED = "<redacted>"


def redact(text: str, *hidden: str) -> str:
    """``text`` without URLs and without any of ``hidden`` (session ids): what a client may see.

    ``engine http://10.0.0.5:6878 unreachable`` becomes ``engine unreachable``, and
    ``http://…/ace/c/<session>/7.ts: truncated`` becomes ``truncated``.
    """
    text = _URL.sub("", text)
    for secret in hidden:
        if secret:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _TIDY:
        text = pattern.sub(replacement, text)
    return text.strip() or "upstream failure"


class ProxyError(Exception):
    """An error that maps to one HTTP answer: ``{"error": code, "message": message}``."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after

    def body(self) -> dict[str, str]:
        """The JSON a client gets: the message without URLs (see :func:`redact`)."""
        return {"error": self.code, "message": redact(self.message)}


class BadRequest(ProxyError):
    status = 400
    code = "bad_request"


class Unauthorized(ProxyError):
    status = 401
    code = "unauthorized"


class Forbidden(ProxyError):
    status = 403
    code = "forbidden"


class NotFound(ProxyError):
    status = 404
    code = "not_found"


class EngineError(ProxyError):
    """The engine failed: it refused a session, answered garbage, or could not be reached."""

    status = 502
    code = "engine_error"

    def __init__(
        self, message: str, *, upstream_status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.upstream_status = upstream_status


class ChannelFailed(ProxyError):
    """The channel ended on an upstream failure; the id is refused for a while."""

    status = 502
    code = "channel_failed"


class NoEngineAvailable(ProxyError):
    status = 503
    code = "no_engine_available"


class BufferTimeout(ProxyError):
    status = 503
    code = "buffer_timeout"


class OverCapacity(ProxyError):
    """A configured cap (channels, players, session opens) is reached; retry later."""

    status = 503
    code = "over_capacity"


class LoopingStream(ProxyError):
    """The orchestrator lists this content as looping: it is not played."""

    status = 422
    code = "looping_stream"


class UpstreamRefused(EngineError):
    """An engine pointed us at a host we do not fetch from (``TRIOPROXY_ALLOW_UPSTREAM_HOSTS``)."""

    code = "upstream_refused"
