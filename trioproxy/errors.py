"""Errors a client can see: each carries its HTTP status, a short code and a message."""

from __future__ import annotations

__all__ = [
    "BadRequest",
    "BufferTimeout",
    "ChannelFailed",
    "EngineError",
    "Forbidden",
    "LoopingStream",
    "NoEngineAvailable",
    "NotFound",
    "NotMpegTs",
    "OverCapacity",
    "ProxyError",
    "Unauthorized",
    "UpstreamRefused",
]


class ProxyError(Exception):
    """An error that maps to one HTTP answer: ``{"error": code, "message": message}``."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after

    def body(self) -> dict[str, str]:
        return {"error": self.code, "message": self.message}


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
