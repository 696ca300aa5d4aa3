"""A channel as ``/proxy/status`` shows it."""

from __future__ import annotations

import math
from typing import Any

import trio

from ..errors import redact
from .channel import Channel

__all__ = ["channel_status"]


def channel_status(channel: Channel, *, detail: bool = True) -> dict[str, Any]:
    """``channel`` for the status page. Without ``detail`` (a caller without the key): no
    ``stream_id`` or ``playback_session_id`` (with them anyone could stop the session through
    the engine's own API), and the end reason without URLs."""
    now = trio.current_time()
    window = channel.window
    segments = list(window)
    session: dict[str, Any] = {}
    end_reason = channel.end_reason
    if detail:
        current = channel.session
        session = {
            "stream_id": channel.stream_id,
            "playback_session_id": current.playback_session_id if current else None,
        }
    elif end_reason is not None:
        end_reason = redact(end_reason, *channel.session_ids())
    variant = channel.variant
    stat = channel.feed.engine_stat
    return {
        "channel": channel.name,
        "incarnation": channel.incarnation,
        "key_type": channel.key_type,
        "key": channel.key,
        "state": channel.state.value,
        "end_reason": end_reason,
        "age_seconds": round(now - channel.created_at, 3),
        "engine": {"url": channel.engine.base_url, "container_id": channel.engine.container_id},
        **session,
        "clients": channel.clients.count(now),
        "waiting": channel.waiting,
        "ts": channel.ts.snapshot(),
        "buffer": {
            "segments": len(segments),
            "bytes": window.total_bytes,
            "first_sequence": segments[0].sequence if segments else None,
            "last_sequence": segments[-1].sequence if segments else None,
            "seconds": round(math.fsum(s.duration for s in segments), 3),
            "gaps": window.gaps,
            "dropped_for_memory": window.dropped_for_budget,
            "target_duration": window.target_duration,
        },
        "events": channel.events_snapshot(),
        "engine_stats": None if stat is None else stat.as_dict(now),
        "sessions": [record.snapshot(detail=detail, now=now) for record in channel.sessions],
        "failovers": channel.switches.total,
        "upstream": {
            "variant": None
            if variant is None
            else {"uri": variant.uri, "bandwidth": variant.bandwidth},
            "resources": len(channel.resources),
            "ended": channel.endlist,
        },
    }
