"""A TS player: one connection's place in its channel's MPEG-TS stream, and the pieces it is sent.

:class:`TsChunk` is one piece of the stream (a segment, or media as it arrived); a
:class:`TsPlayer` is where its connection is in the stream, what it was sent, and how the
stream may write to it without waking its task (:attr:`TsPlayer.offer`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import trio

from ..hls.window import Segment

__all__ = ["TsChunk", "TsPlayer", "not_mpegts"]


def not_mpegts(segment: Segment) -> str | None:
    """Why ``segment`` cannot go out in an MPEG-TS stream, or None when it can."""
    meta = segment.meta
    if meta.init is not None or meta.extension in ("m4s", "mp4", "cmfv", "cmfa"):
        return "its segments are fragmented MP4 (EXT-X-MAP, .m4s), not MPEG-TS"
    if any(key.method != "NONE" for key in meta.keys):
        return "its segments are encrypted (EXT-X-KEY)"
    if meta.extension != "ts":
        return f"its segments are .{meta.extension}, not MPEG-TS"
    return None


@dataclass(frozen=True, slots=True)
class TsChunk:
    sequence: int
    data: bytes
    duration: float
    arrived_at: float
    unsupported: str | None = None
    charged: int = 0
    """Bytes of it charged to the channel's memory account: a copy's size, else 0."""


class TsPlayer:
    """One TS connection: where it is in the stream and what it was sent."""

    __slots__ = (
        "_lot",
        "_on_disconnect",
        "connected_at",
        "cursor",
        "cut",
        "idle",
        "label",
        "offer",
        "owing",
        "relay",
        "sent_bytes",
    )

    def __init__(
        self, label: str, on_disconnect: Callable[[], None], *, relay: str | None = None
    ) -> None:
        self.label = label
        """Who it is, for logs and status (the peer's address)."""
        self.relay = relay
        """The id of the cluster instance whose relay this player is (None: a viewer)."""
        self.connected_at = trio.current_time()
        self.cursor: int | None = None
        """The first sequence not yet sent whole; None until the first segment."""
        self.sent_bytes = 0
        self.cut: str | None = None
        """Why the stream cut it loose, once it did."""
        self._on_disconnect = on_disconnect
        self.offer: Callable[[bytes], bool] | None = None
        """Writes data to the connection at once, without waiting: True when it took all of it;
        False when the rest is owed (the player's own task writes it). None: the player's own
        task writes everything."""
        self.idle = False
        """Its task waits for media (:meth:`TsStream.idle`): the stream may offer it data."""
        self.owing = False
        """An offer left part of its data unwritten: the player's task must write the rest."""
        self._lot = trio.lowlevel.ParkingLot()

    def wake(self) -> None:
        self._lot.unpark_all()

    def disconnect(self, reason: str) -> None:
        """Cut this player loose now: its connection is closed, whatever it is doing."""
        if self.cut is None:
            self.cut = reason
            self._on_disconnect()
