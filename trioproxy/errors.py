"""Errors a client can see: each carries its HTTP status, a short code and a message.

What a client sees of a message is :func:`redact`-ed: engine URLs (which carry session ids) are
left out; the operator's log keeps the whole message.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

__all__ = [
    "BadRequest",
    "BufferTimeout",
    "ChannelFailed",
    "ContentUnavailable",
    "EngineError",
    "Forbidden",
    "LoopingStream",
    "NoEngineAvailable",
    "NotFound",
    "NotMpegTs",
    "NotOwner",
    "OverCapacity",
    "OwnershipChanged",
    "ProxyError",
    "Unauthorized",
    "UpstreamRefused",
    "UpstreamUnusable",
    "public_url",
    "redact",
]

_URL = re.compile(
    r"""(?P<intro>\s+(?:at|from|on|to|for\s+url))?  # the word that introduces the URL
        (?P<space>\s*)(['"]?)(?P<url>[a-z][a-z0-9+.-]*://[^\s'"<>()]*[^\s'"<>():])\3
    """,
    re.IGNORECASE | re.VERBOSE,
)


_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/?#\s@]*@", re.IGNORECASE)
"""A URL's ``user:password@``, whatever characters the password has: dropped first."""


def _host_only(match: re.Match[str]) -> str:
    """A URL becomes its ``host:port``: which upstream is named, never a path or query."""
    netloc = urlsplit(match.group("url")).netloc.rpartition("@")[2]
    intro = (match.group("intro") or "").replace("for url", "from").replace("for URL", "from")
    return f"{intro}{match.group('space')}{netloc}" if netloc else ""


_TIDY = ((re.compile(r":\s*:"), ":"), (re.compile(r"^\s*:\s*"), ""), (re.compile(r"\s{2,}"), " "))
REDACTED = "<redacted>"


def redact(text: str, *hidden: str) -> str:
    """``text`` with each URL cut to its host and without any of ``hidden`` (session ids): what a
    client may see. Paths and queries carry session ids and a source's account (as does a URL's
    ``user:password@``, never shown); the host says which upstream failed.

    ``engine http://10.0.0.5:6878 unreachable`` stays ``engine 10.0.0.5:6878 unreachable``, and
    ``http://e:6878/ace/c/<session>/7.ts: truncated`` becomes ``e:6878: truncated``.
    """
    text = _URL.sub(_host_only, _USERINFO.sub(r"\g<scheme>", text))
    for secret in hidden:
        if secret:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _TIDY:
        text = pattern.sub(replacement, text)
    return text.strip() or "upstream failure"


def public_url(url: str) -> str:
    """``url`` as anyone may see it: ``scheme://host[:port]``, never its user name, password,
    path or query; ``""`` when it is no absolute URL (a relative URI shows nothing)."""
    try:
        parts = urlsplit(url.strip())
        host, port = parts.hostname, parts.port
    except ValueError:
        return ""
    if not parts.scheme or not host:
        return ""
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}" + ("" if port is None else f":{port}")


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


class NotMpegTs(ProxyError):
    """MPEG-TS output was asked for a channel whose segments are not MPEG-TS (fMP4...)."""

    status = 406
    code = "not_mpegts"


class EngineError(ProxyError):
    """The engine failed: it refused a session, answered garbage, or could not be reached."""

    status = 502
    code = "engine_error"

    def __init__(
        self, message: str, *, upstream_status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.upstream_status = upstream_status


class ContentUnavailable(EngineError):
    """The engine answered, and has nothing for this content: it refused to open a session for
    it (``{"response": null, "error": "..."}``), or the session never brought (or stopped
    bringing) segments while the engine went on answering for it. It says nothing against the
    engine: no breaker opens on it (``channels/failover.py`` bounds what such content costs)."""


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


class UpstreamUnusable(EngineError):
    """What the upstream sent breaks a bound or a rule (a body over its ``TRIOPROXY_MAX_*_BYTES``,
    media content-encoded): the same request would get the same answer, so it is not retried."""


class UpstreamRefused(EngineError):
    """An engine pointed us at a host we do not fetch from (``TRIOPROXY_ALLOW_UPSTREAM_HOSTS``)."""

    code = "upstream_refused"


class OwnershipChanged(EngineError):
    """Another instance of the cluster owns the channel now (it took the lease over while ours
    could not be renewed): this instance's engine session ends, and the channel relays the new
    owner's output. Nothing against the engine: no breaker opens on it."""

    code = "ownership_changed"


class NotOwner(ProxyError):
    """A relay asked this instance for a channel it does not own: ask the owner."""

    status = 409
    code = "not_owner"
