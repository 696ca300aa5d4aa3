"""How instances and leases are written down in the store: JSON, the same for every store.

The in-memory store round-trips through these too, so a session or facts that Redis could not
keep (not JSON) fail in the in-memory tests as they would in production.
"""

from __future__ import annotations

import json
from typing import Any

from .leases import Holder, Instance

__all__ = ["decode_instance", "decode_session", "encode_instance", "encode_session", "holder"]


def encode_instance(instance: Instance, *, facts: bool = True) -> str:
    """``instance`` as JSON; ``facts=False`` leaves its facts out (a lease records who, not what
    its heartbeat says)."""
    record: dict[str, Any] = {
        "id": instance.id,
        "url": instance.url,
        "started_at": instance.started_at,
    }
    if facts:
        record["facts"] = instance.facts
    return json.dumps(record, separators=(",", ":"))


def decode_instance(text: str) -> Instance:
    record = json.loads(text)
    return Instance(
        id=str(record["id"]),
        url=str(record["url"]),
        started_at=float(record.get("started_at", 0.0)),
        facts=dict(record.get("facts") or {}),
    )


def encode_session(session: dict[str, Any] | None) -> str:
    """``session`` as JSON; the empty string for None (the store keeps no session)."""
    return "" if session is None else json.dumps(session, separators=(",", ":"))


def decode_session(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    session = json.loads(text)
    return session if isinstance(session, dict) else None


def holder(instance: str, token: str | int, session: str | None) -> Holder:
    """A :class:`Holder` from what the store keeps of a lease."""
    return Holder(decode_instance(instance), int(token), decode_session(session))
