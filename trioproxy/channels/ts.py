"""A channel as one continuous MPEG-TS stream: its TS players, each a cursor into its segments.

:class:`TsStream` keeps the channel's newest segments spliced for continuous output
(:class:`~trioproxy.hls.mpegts.Splicer`: the very bytes of the window unless a counter or a
discontinuity needed fixing) — one copy for every player. A :class:`TsPlayer` is a cursor into
it; :func:`play` is the loop a player's connection runs in its own task: the newest segment at
once (a fast start), then each new one as it arrives, null packets while there is nothing to
send (the engine prebuffering, a stall), and the end when the channel ends.

A player whose oldest unsent segment arrived more than ``max_lag`` segment durations ago is cut
loose (:meth:`TsPlayer.disconnect`) when the next segment arrives, whatever its connection is
doing, so a slow reader never slows anyone else nor holds on to more; a burst of segments
arriving at once (an engine's backlog) cuts nobody. A segment lasts
:attr:`~trioproxy.hls.window.SegmentWindow.pace` for these timers (the segments' own durations,
bounded), never the upstream's declared target duration. No task of its own: the fetch loop's
append calls :meth:`TsStream.publish`.

The stream keeps the newest ``max_lag`` + :data:`SPARE_CHUNKS` spliced segments: what a player
can still be served. A spliced segment is a copy wherever the splicer changed a byte (after a
gap or an upstream restart, every one is): copies are charged to the channel's memory account,
as the window's segments are, and given back when dropped (or with the account, when the
channel closes). A copy that does not fit even after the window dropped what it does not serve
goes out unspliced (its continuity counters jump there).
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import trio

from ..hls.mpegts import PACKET_SIZE, Splicer, null_packets
from ..hls.window import OverBudget, Segment, SegmentWindow

__all__ = ["KEEPALIVE", "SPARE_CHUNKS", "TsChunk", "TsPlayer", "TsStream", "not_mpegts", "play"]

log = logging.getLogger(__name__)

KEEPALIVE = 0.5
"""Seconds between null packets while no media flows."""
KEEPALIVE_PACKETS = 1
KEEPALIVE_BYTES = KEEPALIVE_PACKETS * PACKET_SIZE
SPARE_CHUNKS = 2
"""Spliced segments kept beyond ``max_lag``: the one a player at the lag bound is being sent,
and one arriving."""


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

    __slots__ = ("_on_disconnect", "connected_at", "cursor", "cut", "label", "sent_bytes")

    def __init__(self, label: str, on_disconnect: Callable[[], None]) -> None:
        self.label = label
        """Who it is, for logs and status (the peer's address)."""
        self.connected_at = trio.current_time()
        self.cursor: int | None = None
        """The first sequence not yet sent whole; None until the first segment."""
        self.sent_bytes = 0
        self.cut: str | None = None
        """Why the stream cut it loose, once it did."""
        self._on_disconnect = on_disconnect

    def disconnect(self, reason: str) -> None:
        """Cut this player loose now: its connection is closed, whatever it is doing."""
        if self.cut is None:
            self.cut = reason
            self._on_disconnect()


class TsStream:
    """The TS players of one channel and the spliced segments they read."""

    def __init__(self, window: SegmentWindow, max_lag: int) -> None:
        self.max_lag = max_lag
        self._window = window
        self._chunks: deque[TsChunk] = deque()
        self._keep = max_lag + SPARE_CHUNKS
        self._over_budget = False
        self._splicer = Splicer()
        self._next: int | None = None
        """The next window sequence to splice; None while no player is connected."""
        self._lot = trio.lowlevel.ParkingLot()
        self._timer: object | None = None
        """The wait of the player that times :attr:`due` for every player parked on it."""
        self.players: dict[TsPlayer, None] = {}
        self.closed = False
        self.last_arrival = -math.inf
        self.target_duration = 1.0
        self.served = 0
        self.cut = 0
        self.left_at = -math.inf
        self._gone = trio.Event()
        self._gone.set()

    def __len__(self) -> int:
        return len(self.players)

    @contextmanager
    def joined(self, player: TsPlayer) -> Iterator[None]:
        """``player`` is present exactly inside this block."""
        if not self.players:
            # Splice from the newest segment on: a fresh stream for whoever is first.
            self._splicer = Splicer()
            self._drop_chunks(0)
            self._next = max(0, self._window.next_sequence - 1)
            self._gone = trio.Event()
            self._sync()
        self.players[player] = None
        self.served += 1
        try:
            yield
        finally:
            del self.players[player]
            if not self.players:
                self._next = None
                self._drop_chunks(0)
                self.left_at = trio.current_time()
                self._gone.set()

    async def wait_gone(self) -> None:
        """Return once no TS player is connected."""
        await self._gone.wait()

    def publish(self) -> None:
        """A segment was appended to the window: splice it, cut loose who lags, wake the rest."""
        if self._next is None:
            return
        self._sync()
        limit = self.max_lag * self.target_duration
        now = trio.current_time()
        for player in list(self.players):
            waiting = self.waiting_since(player)
            if waiting is not None and now - waiting >= limit:
                self.cut += 1
                log.info(
                    "TS player %s: cut loose, %.1f s behind the live edge (TRIOPROXY_TS_MAX_LAG=%d"
                    " segments of %g s)",
                    player.label,
                    now - waiting,
                    self.max_lag,
                    self.target_duration,
                )
                player.disconnect("lagging")
        self._wake_all()

    def waiting_since(self, player: TsPlayer) -> float | None:
        """When the oldest segment ``player`` has not been sent whole arrived (None: none)."""
        if player.cursor is None or not self._chunks:
            return None
        index = player.cursor - self._chunks[0].sequence
        if index < 0:
            return -math.inf  # what it needs is gone: as far behind as can be
        if index < len(self._chunks):
            return self._chunks[index].arrived_at
        return None

    def close(self) -> None:
        """The channel ends: every player's stream ends once it has what it was due."""
        self.closed = True
        self._wake_all()

    def _sync(self) -> None:
        assert self._next is not None
        now = trio.current_time()
        while (segment := self._window.get(self._next)) is not None or (
            self._window.next_sequence > self._next
        ):
            self._next += 1
            if segment is None:
                continue  # the window dropped it before it was seen: the next one is a gap
            reason = not_mpegts(segment)
            data, charged = segment.data, 0
            if reason is None:
                data = self._splicer.splice(data, discontinuity=segment.discontinuity)
                if data is not segment.data:
                    data, charged = self._charge(data, segment.data)
            self._chunks.append(
                TsChunk(segment.sequence, data, segment.duration, now, reason, charged)
            )
            self._drop_chunks(self._keep)
            self.last_arrival = now
            self.target_duration = float(self._window.pace)

    def _charge(self, copy: bytes, original: bytes) -> tuple[bytes, int]:
        """``copy`` charged to the channel's account, or ``original`` when it does not fit."""
        account = self._window.account
        if account is None:
            return copy, 0
        self._window.make_room(len(copy))
        try:
            account.add(len(copy))
        except OverBudget:
            if not self._over_budget:
                self._over_budget = True
                log.warning(
                    "TS stream: a spliced segment (%d bytes) does not fit in the memory budget "
                    "(TRIOPROXY_MEMORY_BUDGET); sent as the upstream made it",
                    len(copy),
                )
            return original, 0
        self._over_budget = False
        return copy, len(copy)

    def _drop_chunks(self, keep: int) -> None:
        """Keep the newest ``keep`` chunks; what a dropped copy was charged goes back."""
        while len(self._chunks) > keep:
            chunk = self._chunks.popleft()
            if chunk.charged and self._window.account is not None:
                self._window.account.remove(chunk.charged)

    @property
    def held_bytes(self) -> int:
        """Bytes the spliced segments kept hold (copies or the window's own)."""
        return sum(len(chunk.data) for chunk in self._chunks)

    @property
    def charged_bytes(self) -> int:
        """Bytes of copies charged to the channel's memory account."""
        return sum(chunk.charged for chunk in self._chunks)

    def chunk_for(self, player: TsPlayer) -> TsChunk | None:
        """What ``player`` gets next: at first the newest segment, then each in turn."""
        if not self._chunks:
            return None
        if player.cursor is None:
            return self._chunks[-1]
        index = player.cursor - self._chunks[0].sequence
        if index < 0:
            player.disconnect("lagging")  # what it needs is gone (the lag bound was not reached)
            return None
        if index < len(self._chunks):
            return self._chunks[index]
        return None

    def lag(self, player: TsPlayer) -> tuple[int, float]:
        """Segments that arrived and ``player`` has not been sent whole, and for how long the
        oldest of them has waited."""
        waiting = self.waiting_since(player)
        if waiting is None or player.cursor is None:
            return 0, 0.0
        behind = self._chunks[-1].sequence + 1 - player.cursor
        return behind, max(0.0, trio.current_time() - waiting)

    @property
    def due(self) -> float:
        """When the next segment is overdue: players get null packets from then on."""
        return self.last_arrival + self.target_duration + KEEPALIVE

    async def wait(self, deadline: float) -> None:
        """Until a segment arrives, the channel ends, or ``deadline``."""
        with trio.move_on_at(deadline):
            await self._lot.park()

    async def wait_due(self) -> None:
        """Until a segment arrives, the channel ends, or :attr:`due` (or a little earlier).

        What every player waits for while media flows: one of them times it for all (a cancel
        scope with a deadline for each player and segment is most of the CPU a wait costs).
        That one's wait ending otherwise than by a segment or the end (``due`` passed, or it
        left) wakes every player, so that they send their null packets or another one times.
        """
        if self._timer is not None:
            await self._lot.park()
            return
        timer = self._timer = object()
        try:
            with trio.move_on_at(self.due):
                await self._lot.park()
        finally:
            if self._timer is timer:
                self._wake_all()

    def _wake_all(self) -> None:
        self._timer = None
        self._lot.unpark_all()

    def snapshot(self) -> dict[str, Any]:
        now = trio.current_time()
        players = []
        for player in self.players:
            segments, seconds = self.lag(player)
            players.append(
                {
                    "client": player.label,
                    "connected_seconds": round(now - player.connected_at, 3),
                    "bytes_sent": player.sent_bytes,
                    "lag_segments": segments,
                    "lag_seconds": round(seconds, 3),
                }
            )
        return {
            "players": players,
            "served": self.served,
            "cut_lagging": self.cut,
            "max_lag_segments": self.max_lag,
        }


async def play(
    stream: TsStream,
    player: TsPlayer,
    send: Callable[[bytes], Awaitable[None]],
    *,
    finished: Callable[[], bool] = lambda: False,
    segment_sent: Callable[[], None] = lambda: None,
    keepalive: bool = True,
) -> str:
    """Send ``stream`` to ``player`` through ``send`` until it ends; returns why it ended.

    The first bytes go out at once: the newest segment, or a null packet while there is none.
    Without ``keepalive``, nothing goes out before the first segment: a media server's probe
    (Emby, Plex) that reads null packets first may misjudge the stream.
    ``finished`` says the upstream ended (finished content): the player ends once sent all;
    ``segment_sent`` is called after each segment sent whole (not after null packets).
    """
    with stream.joined(player):
        last_send = -math.inf
        while True:
            chunk = stream.chunk_for(player)
            if player.cut is not None:
                return player.cut
            if chunk is not None:
                if chunk.unsupported is not None:
                    log.info("TS player %s: ended: %s", player.label, chunk.unsupported)
                    return "not MPEG-TS"
                player.cursor = chunk.sequence  # not sent whole yet: it counts as lag
                await send(chunk.data)
                player.cursor = chunk.sequence + 1
                player.sent_bytes += len(chunk.data)
                segment_sent()
                last_send = trio.current_time()
                continue
            if stream.closed or finished():
                return "channel ended"
            if player.cursor is None and not keepalive:
                await stream.wait(math.inf)  # until the first segment, or the end
                continue
            now = trio.current_time()
            # Null packets while no media flows: before the first segment, and once the next
            # one is overdue (a stall) — never between segments arriving on time.
            due = stream.due
            deadline = max(last_send + KEEPALIVE, due)
            if now >= deadline:
                await send(null_packets(KEEPALIVE_PACKETS))
                player.sent_bytes += KEEPALIVE_BYTES
                last_send = trio.current_time()
                continue
            if deadline == due:
                await stream.wait_due()  # media flows: timed once for every player
            else:
                await stream.wait(deadline)
