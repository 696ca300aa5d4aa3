"""What an engine's ``stat_url`` says of a session: status, peers, speeds, totals, live position.

``{"response": {"status": "dl", "peers": 7, "speed_down": 400, "speed_up": 20, "downloaded": ...,
"uploaded": ..., "livepos": {...}}, "error": null}`` (CONTRACT §1). Speeds arrive in kB/s and are
kept as the engine gives them; fields the engine leaves out or garbles are None.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["LIVEPOS_FIELDS", "EngineStat", "parse_stat"]

LIVEPOS_FIELDS = ("live_first", "live_last", "pos", "first_ts", "last_ts")


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value) if isinstance(value, int | float | str) else math.nan
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _count(value: Any) -> int | None:
    number = _number(value)
    return None if number is None or not math.isfinite(number) else int(number)


@dataclass(frozen=True, slots=True)
class EngineStat:
    """One ``stat_url`` answer, read at ``read_at`` (``trio.current_time()``)."""

    read_at: float
    status: str | None = None
    peers: int | None = None
    speed_down: float | None = None
    """kB/s, as the engine reports it."""
    speed_up: float | None = None
    downloaded: int | None = None
    """Bytes the engine downloaded for the session."""
    uploaded: int | None = None
    livepos: dict[str, int] | None = None
    """``live_first``, ``live_last``, ``pos``, ``first_ts``, ``last_ts``: those given."""

    def as_dict(self, now: float) -> dict[str, Any]:
        return {
            "status": self.status,
            "peers": self.peers,
            "speed_down_kbps": self.speed_down,
            "speed_up_kbps": self.speed_up,
            "downloaded_bytes": self.downloaded,
            "uploaded_bytes": self.uploaded,
            "livepos": self.livepos,
            "age_seconds": round(now - self.read_at, 3),
        }


def parse_stat(payload: Any, now: float) -> EngineStat | None:
    """The stat in a ``stat_url`` answer; None when it carries none (an error, garbage)."""
    if not isinstance(payload, dict):
        return None
    response = payload.get("response")
    if not isinstance(response, dict):
        return None
    status = response.get("status")
    livepos = response.get("livepos")
    position: dict[str, int] | None = None
    if isinstance(livepos, dict):
        position = {}
        for name in LIVEPOS_FIELDS:
            value = _count(livepos.get(name))
            if value is not None:
                position[name] = value
    return EngineStat(
        read_at=now,
        status=str(status)[:32] if isinstance(status, str) else None,
        peers=_count(response.get("peers")),
        speed_down=_number(response.get("speed_down")),
        speed_up=_number(response.get("speed_up")),
        downloaded=_count(response.get("downloaded")),
        uploaded=_count(response.get("uploaded")),
        livepos=position,
    )
