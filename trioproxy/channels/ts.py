"""A channel as one continuous MPEG-TS stream: its TS players, each a cursor into its chunks.

From an HLS upstream, :class:`TsStream` keeps the channel's newest segments spliced for
continuous output (:class:`~trioproxy.hls.mpegts.Splicer`: the very bytes of the window unless
a counter or a discontinuity needed fixing) — one copy for every player; the fetch loop's
append calls :meth:`TsStream.publish`. From an engine's MPEG-TS (:meth:`TsStream.set_live`),
its chunks are the media as read (:meth:`TsStream.packets`), gathered (:mod:`.ts_live`) and
published by :meth:`TsStream.run`, the channel's writer, which writes each to every player
waiting with a connection that takes it at once and wakes only the others; a joining player
starts from the segment in progress (PAT, PMT, keyframe). A new upstream session goes out from
its first head on, spliced (counters continued, ``discontinuity_indicator`` set) as segments are.
:func:`.ts_play.play` is the loop a player's connection runs in its own task.

A player whose oldest unsent chunk arrived more than ``max_lag`` segment durations ago is cut
loose (:meth:`TsPlayer.disconnect`) when the next chunk arrives, whatever its connection is
doing, so a slow reader never slows anyone else nor holds on to more; a burst of segments
arriving at once (an engine's backlog) cuts nobody. A segment lasts
:attr:`~trioproxy.hls.window.SegmentWindow.pace` for these timers (the segments' own durations,
bounded), never the upstream's declared target duration.

The stream keeps the newest ``max_lag`` + :data:`SPARE_CHUNKS` spliced segments (live: the
chunks of the last ``max_lag`` segment durations, and the head a joining player starts from).
Copies (a spliced segment wherever the splicer changed a byte; every live chunk and head) are
charged to the channel's memory account, as the window's segments are, and given back when
dropped (or with the account, when the channel closes). A spliced copy that does not fit even
after the window dropped what it does not serve goes out unspliced; a live one goes out
uncharged (said once).
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

import trio

from ..hls.mpegts import PACKET_SIZE, Splicer, null_packets
from ..hls.segmenter import Segmenter
from ..hls.window import SegmentWindow
from .ts_live import Copies, Gather
from .ts_player import TsChunk, TsPlayer, not_mpegts

__all__ = ["KEEPALIVE", "SPARE_CHUNKS", "TsChunk", "TsPlayer", "TsStream", "not_mpegts"]

log = logging.getLogger(__name__)

KEEPALIVE = 0.5
"""Seconds between null packets while no media flows."""
KEEPALIVE_PACKETS = 1
KEEPALIVE_BYTES = KEEPALIVE_PACKETS * PACKET_SIZE
SPARE_CHUNKS = 2
"""Spliced segments kept beyond ``max_lag``: the one a player at the lag bound is being sent,
and one arriving."""


class TsStream:
    """The TS players of one channel and the spliced segments they read."""

    def __init__(self, window: SegmentWindow, max_lag: int) -> None:
        self.max_lag = max_lag
        self._window = window
        self._chunks: deque[TsChunk] = deque()
        self._keep = max_lag + SPARE_CHUNKS
        self._copies = Copies(window)
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
        # Media as it arrives (``ts_live``): on an engine's MPEG-TS, read by the segmenter.
        self._segmenter: Segmenter | None = None
        self._gather = Gather()
        self._sequence = 0
        """The sequence of the next chunk published as it arrived."""
        self._head: TsChunk | None = None
        """The segment in progress, where a joining player starts (until more media comes)."""
        self._writer = trio.lowlevel.ParkingLot()
        self._last_media = -math.inf
        self._last_null = -math.inf
        self._resume = self._mark = False  # a new upstream session: nothing before its head

    @property
    def live(self) -> bool:
        """Players are sent media as it arrives (not a segment at a time)."""
        return self._segmenter is not None

    def __len__(self) -> int:
        return len(self.players)

    @contextmanager
    def joined(self, player: TsPlayer) -> Iterator[None]:
        """``player`` is present exactly inside this block."""
        if not self.players:
            self._gone = trio.Event()
            self._start()
        self.players[player] = None
        self.served += 1
        try:
            yield
        finally:
            del self.players[player]
            if not self.players:
                self._next = None
                self._drop_chunks(0)
                self._drop_live()
                self.left_at = trio.current_time()
                self._gone.set()

    def _start(self) -> None:
        """A fresh stream for whoever is first (or for everyone, when the upstream's kind
        changes): from the newest segment on, or live from the segment in progress."""
        self._splicer = Splicer()
        self._drop_chunks(0)
        self._drop_live()
        if self.live:
            self._next = None
            self._last_media = trio.current_time()
            self._writer.unpark_all()
        else:
            self._next = max(0, self._window.next_sequence - 1)
            self._sync()

    def set_live(self, segmenter: Segmenter | None) -> None:
        """The upstream is an MPEG-TS read by ``segmenter``: players get media as it arrives,
        and a joining one starts from the segment in progress. None: segments, as they are
        appended. A change starts every player afresh (at PAT, PMT and a keyframe)."""
        if segmenter is self._segmenter:
            if segmenter is not None:  # a new session
                self.packets(b"")  # what is gathered of the last one goes out now
                self._resume = True
            return
        self._segmenter = segmenter
        if segmenter is not None and not len(self._window):
            self.target_duration = float(segmenter.target_duration)  # until segments tell
        if not self.players:
            return
        self._start()
        for player in self.players:
            player.cursor = None
            player.wake()
        self._wake_all()

    def packets(self, data: bytes) -> None:
        """Whole packets the segmenter just read (empty: the upstream ended, so what is
        gathered goes out now): published to the players once enough is gathered."""
        if self._segmenter is None or not self.players:
            return
        self._drop_head()
        if self._resume:
            data = self._segmenter.head  # from the new session's random-access point
            if not data:
                return
            self._resume, self._mark = False, True
        now = trio.current_time()
        had = bool(self._gather)
        if self._gather.add(data, now) or (not data and self._gather):
            self._publish_live(self._gather.take(), now, media=True)
        elif not had and self._gather:
            self._writer.unpark_all()  # the writer times it

    async def run(self) -> None:
        """The stream's writer: publishes gathered media once due, and null packets during a
        stall, to every player of a live stream. Runs for the channel's life."""
        while True:
            with trio.move_on_at(self._writer_due()):
                await self._writer.park()
            now = trio.current_time()
            if self._segmenter is None or not self.players:
                continue
            if self._gather and now >= self._gather.deadline:
                self._publish_live(self._gather.take(), now, media=True)
            elif now >= self._null_due():
                self._publish_live(null_packets(KEEPALIVE_PACKETS), now, media=False)

    def _writer_due(self) -> float:
        if self._segmenter is None or not self.players:
            return math.inf
        return min(self._gather.deadline, self._null_due())

    def _null_due(self) -> float:
        # Live media never leaves players silent for more than twice the keepalive: 1 s.
        return max(self._last_media + KEEPALIVE, self._last_null) + KEEPALIVE

    async def idle(self, player: TsPlayer) -> None:
        """``player``'s task waits for media while the stream offers it what arrives."""
        player.idle = True
        try:
            await player._lot.park()
        finally:
            player.idle = False

    def _publish_live(self, data: bytes, now: float, *, media: bool) -> None:
        """``data`` to every player: written at once to each that waits and can take it,
        the others woken; who lags beyond the bound is cut loose."""
        if media:
            self._last_media = self.last_arrival = now
            data = self._splicer.splice(data, discontinuity=self._mark)
            self._mark = False
        else:
            self._last_null = now
        chunk = TsChunk(self._sequence, data, 0.0, now, None, self._copies.charge(len(data)))
        self._sequence += 1
        self._chunks.append(chunk)
        limit = self.max_lag * self.target_duration
        for player in list(self.players):
            waiting = self.waiting_since(player)
            if waiting is not None and now - waiting >= limit:
                self._cut(player, now - waiting)
                continue
            if not player.idle:
                continue
            if player.cursor == chunk.sequence and player.offer is not None:
                player.cursor += 1
                player.sent_bytes += len(data)
                if player.offer(data):
                    continue
                player.owing = True
            player.wake()
        while len(self._chunks) > 1 and now - self._chunks[0].arrived_at >= limit:
            self._drop_chunks(len(self._chunks) - 1)
        self._lot.unpark_all()  # players about to start from the head

    def _head_chunk(self) -> TsChunk | None:
        """Where a joining player starts: the segment in progress, up to the newest media (the
        player then goes on from what is published next)."""
        if self._head is None:
            assert self._segmenter is not None
            data = self._segmenter.head
            if not data:
                return None
            now = trio.current_time()
            if self._gather:  # the head ends with it: published now, the player goes on after
                self._publish_live(self._gather.take(), now, media=True)
            sequence = self._sequence - 1
            data = self._splicer.aligned(data)  # what follows was spliced
            self._head = TsChunk(sequence, data, 0.0, now, None, self._copies.charge(len(data)))
        return self._head

    def _drop_head(self) -> None:
        head, self._head = self._head, None
        if head is not None:
            self._copies.give_back(head.charged)

    def _drop_live(self) -> None:
        self._gather.clear()
        self._drop_head()
        self._last_media = self._last_null = -math.inf

    async def wait_gone(self) -> None:
        """Return once no TS player is connected."""
        await self._gone.wait()

    def publish(self) -> None:
        """A segment was appended to the window: splice it, cut loose who lags, wake the rest
        (a live stream's players got its media as it arrived)."""
        self.target_duration = float(self._window.pace)
        if self._next is None:
            return
        self._sync()
        limit = self.max_lag * self.target_duration
        now = trio.current_time()
        for player in list(self.players):
            waiting = self.waiting_since(player)
            if waiting is not None and now - waiting >= limit:
                self._cut(player, now - waiting)
        self._wake_all()

    def _cut(self, player: TsPlayer, behind: float) -> None:
        self.cut += 1
        log.info(
            "TS player %s: cut loose, %.1f s behind the live edge (TRIOPROXY_TS_MAX_LAG=%d"
            " segments of %g s)",
            player.label,
            behind,
            self.max_lag,
            self.target_duration,
        )
        player.disconnect("lagging")

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
        for player in self.players:
            player.wake()
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
            self._chunks.append(self._copies.spliced(segment, self._splicer, now))
            self._drop_chunks(self._keep)
            self.last_arrival = now
            self.target_duration = float(self._window.pace)

    def _drop_chunks(self, keep: int) -> None:
        """Keep the newest ``keep`` chunks; what a dropped copy was charged goes back."""
        while len(self._chunks) > keep:
            chunk = self._chunks.popleft()
            self._copies.give_back(chunk.charged)

    @property
    def held_bytes(self) -> int:
        """Bytes the chunks kept hold (copies or the window's own)."""
        head = len(self._head.data) if self._head is not None else 0
        return head + sum(len(chunk.data) for chunk in self._chunks)

    @property
    def charged_bytes(self) -> int:
        """Bytes of copies charged to the channel's memory account."""
        head = self._head.charged if self._head is not None else 0
        return head + sum(chunk.charged for chunk in self._chunks)

    def chunk_for(self, player: TsPlayer) -> TsChunk | None:
        """What ``player`` gets next: at first the newest segment (live: the segment in
        progress), then each in turn."""
        if player.cursor is None and self.live:
            return self._head_chunk()
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
