"""The registry and its channels as ``/proxy/status`` shows them.

The status is built whole, here; a caller without the key gets it through the allow-list of
:mod:`.public`, with every secret of every channel (:func:`.answers.channel_secrets`) left out
of texts.
"""

from __future__ import annotations

import math
from typing import Any

import trio

from .admission import opening_counts
from .answers import channel_secrets
from .channel import Channel
from .cluster_status import channel_cluster, cluster_status, instance_secrets
from .membership import Membership
from .public import public_status, url_secrets
from .registry import Registry
from .ts import TsStream

__all__ = ["channel_status", "registry_status"]


def channel_status(channel: Channel, membership: Membership | None = None) -> dict[str, Any]:
    """``channel`` for the status page, whole (see :mod:`.public` for what is public of it);
    with ``membership``, its role in the cluster (:mod:`.cluster_status`)."""
    now = trio.current_time()
    window = channel.window
    segments = list(window)
    current = channel.session
    variant = channel.variant
    stat = channel.feed.engine_stat
    return {
        "channel": channel.name,
        "incarnation": channel.incarnation,
        "key_type": channel.key_type,
        "key": channel.key,
        "state": channel.state.value,
        "end_reason": channel.end_reason,
        "age_seconds": round(now - channel.created_at, 3),
        "engine": {"url": channel.engine.base_url, "container_id": channel.engine.container_id},
        "stream_id": channel.stream_id,
        "playback_session_id": current.playback_session_id if current else None,
        "clients": channel.clients.count(now),
        "waiting": channel.waiting,
        "ts": ts_status(channel.ts, now),
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
        "sessions": [record.snapshot(now=now) for record in channel.sessions],
        "failovers": channel.switches.total,
        "upstream": {
            "variant": None
            if variant is None
            else {"uri": variant.uri, "bandwidth": variant.bandwidth},
            "resources": len(channel.resources),
            "ended": channel.endlist,
        },
        "cluster": None if membership is None else channel_cluster(channel, membership, now),
    }


def registry_status(registry: Registry, *, detail: bool = True) -> dict[str, Any]:
    """The status page. Without ``detail`` (a caller without the key), only what
    :mod:`.public` allows: no URL but ``scheme://host[:port]``, no engine session ids nor what
    carries them, no viewer's address, no cluster instance's address."""
    channels, closing = registry.channels, registry.closing
    status = _registry_status(registry, channels, closing)
    if detail:
        return status
    secrets = [secret for channel in (*channels, *closing) for secret in channel_secrets(channel)]
    secrets += [secret for url in registry.config.epg_sources for secret in url_secrets(url)]
    secrets += instance_secrets(registry)
    return public_status(status, secrets)


def _registry_status(
    registry: Registry, channels: list[Channel], closing: list[Channel]
) -> dict[str, Any]:
    config = registry.config
    orchestrator = registry.orchestrator
    membership = registry.membership
    return {
        "redacted": False,
        "cluster": cluster_status(registry),
        "channels": [channel_status(c, membership) for c in channels],
        "closing": [channel_status(c, membership) for c in closing],
        "engines": registry.directory.snapshot(),
        "engine_list_error": registry.directory.last_refresh_error,
        "events": None
        if orchestrator is None
        else {
            "orchestrator": orchestrator.base_url,
            "api": orchestrator.api,
            "delivered": orchestrator.delivered,
            "dropped": orchestrator.dropped,
        },
        "channels_started": registry.started_total,
        "failovers": registry.failovers,
        "engine_stops_pending": registry.engine_stops_pending,
        "limits": {
            **registry.admission.snapshot(len(channels), opening_counts([*channels, *closing])),
            "memory": registry.memory.snapshot(),
        },
        "limits_per_address": registry.addresses.snapshot(),
        "orchestrator_streams": registry.watcher.snapshot() if registry.watcher else None,
        "guide": registry.guide.snapshot(),
        "config": {
            "max_streams_per_engine": config.max_streams_per_engine,
            "hls_window_size": config.hls_window_size,
            "hls_max_segments": config.hls_max_segments,
            "hls_initial_segments": config.hls_initial_segments,
            "proxy_grace_period": config.proxy_grace_period,
            "hls_client_idle_timeout": config.hls_client_idle_timeout,
        },
    }


def ts_status(stream: TsStream, now: float) -> dict[str, Any]:
    """A channel's TS players, as ``/proxy/status`` shows them."""
    players = []
    for player in stream.players:
        segments, seconds = stream.lag(player)
        players.append(
            {
                "client": player.label,
                "relay": player.relay,
                "connected_seconds": round(now - player.connected_at, 3),
                "bytes_sent": player.sent_bytes,
                "lag_segments": segments,
                "lag_seconds": round(seconds, 3),
            }
        )
    return {
        "players": players,
        "served": stream.served,
        "cut_lagging": stream.cut,
        "max_lag_segments": stream.max_lag,
    }
