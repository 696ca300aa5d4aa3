"""What players are told about a channel that cannot serve them, the same on every way in.

Texts players (and callers of ``/proxy/status`` without the key) see carry no secret of the
channel (:func:`channel_secrets`): URLs are cut to their host and session ids left out
(:func:`~trioproxy.errors.redact`).
"""

from __future__ import annotations

from ..errors import BufferTimeout, ChannelFailed, OverCapacity, redact
from .channel import Channel
from .public import url_secrets

__all__ = ["channel_secrets", "check_not_failed", "check_servable", "public_failure"]


def channel_secrets(channel: Channel) -> list[str]:
    """What no text a caller without the key sees may carry: the channel's engine session ids
    (with one, anyone could stop the session through the engine's own API) and, for a source,
    the credentials in its URL."""
    secrets = [record.playback_session_id or "" for record in channel.sessions]
    session = channel.session
    if session is not None:
        secrets += [session.playback_session_id, session.pid]
    if channel.key_type == "url":
        secrets += url_secrets(channel.key)
    return [secret for secret in secrets if secret]


def public_failure(channel: Channel) -> str:
    """What players are told of the channel's failure (the log has the whole message)."""
    if channel.failure is None:
        return ""
    return redact(channel.failure.message, *channel_secrets(channel))


def check_not_failed(channel: Channel) -> None:
    """Raise the channel's failure as players may see it: ``503`` when it was refused for
    memory, ``502`` when its upstream failed."""
    if channel.failure is not None:
        error = OverCapacity if channel.failure.status == 503 else ChannelFailed
        raise error(public_failure(channel), retry_after=channel.config.failure_backoff or 1)


def check_servable(channel: Channel) -> None:
    """Raise unless the channel's playlist can be served: its failure, no segments within
    ``HLS_BUFFER_READY_TIMEOUT`` (after the caller's wait), or the end of the channel."""
    check_not_failed(channel)
    if not channel.ready.is_set():
        last = channel.feed.last_error
        why = f" (last upstream error: {redact(last, *channel_secrets(channel))})" if last else ""
        raise BufferTimeout(
            f"channel {channel.name}: no segments within "
            f"{channel.config.hls_buffer_ready_timeout:g} s{why}; retry shortly",
            retry_after=5,
        )
    if len(channel.window) == 0:
        raise BufferTimeout(f"channel {channel.name} has ended", retry_after=1)
