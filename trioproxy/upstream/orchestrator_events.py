"""The stream events we send the orchestrator (CONTRACT §2 and §2b): their kinds and bodies.

One body serves v1 and both v2 surfaces: v1's fields, plus the top-level fields v2 needs
(``content_id``, ``engine_id``), which v1 ignores. Pure functions, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from .engine import Engine, Session

__all__ = ["Event", "EventKind", "ended_payload", "started_payload", "stream_id"]

EventKind = Literal["stream_started", "stream_ended"]


@dataclass(frozen=True, slots=True)
class Event:
    """One event for the orchestrator: its kind, the stream it is about, its body."""

    kind: EventKind
    stream_id: str
    payload: dict[str, Any]


def stream_id(key: str, session: Session) -> str:
    """The id we book an engine session's stream under: ``<key>|<playback_session_id>``, ours
    to choose, so retries are idempotent (and a cluster's next owner can end it by name)."""
    return f"{key}|{session.playback_session_id}"


def started_payload(
    *, engine: Engine, key_type: str, key: str, session: Session, stream_id: str
) -> dict[str, Any]:
    """``stream_started`` for v1 and both v2 surfaces: v1's body plus ``content_id`` and
    ``engine_id`` at the top (v2 keys the stream by the first and counts load by the second)."""
    return {
        "container_id": engine.container_id,
        "engine": {"host": engine.host, "port": engine.port},
        "stream": {"key_type": key_type, "key": key},
        "session": {
            "playback_session_id": session.playback_session_id,
            "stat_url": session.stat_url,
            "command_url": session.command_url,
            "is_live": session.is_live,
        },
        "labels": {"source": "trioproxy", "stream_mode": "HLS", "stream_id": stream_id},
        "content_id": key,
        "engine_id": engine.container_id,
    }


def ended_payload(
    *, container_id: str | None, stream_id: str, content_id: str, reason: str
) -> dict[str, Any]:
    """``stream_ended`` for v1 (``stream_id``) and v2 (``content_id``, else it is ignored)."""
    return {
        "container_id": container_id,
        "stream_id": stream_id,
        "content_id": content_id,
        "reason": reason,
    }
