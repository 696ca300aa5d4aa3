"""The loop a TS player's connection runs in its own task: :func:`play`.

The player starts with the newest segment (on a live stream, the segment in progress, from its
PAT, PMT and keyframe), then gets each piece as it comes: a segment at a time from an HLS
upstream; media as it arrives from an engine's MPEG-TS, written to its connection by the
stream itself while it keeps up (:attr:`~.ts_player.TsPlayer.offer`), its task woken only to
write what its connection could not take at once. Null packets go out while no media flows:
before the first media once ``keepalive`` seconds passed without any (then every
:data:`~.ts.KEEPALIVE` seconds), and during a stall; the response ends with the channel.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable

import trio

from ..hls.mpegts import null_packets
from .ts import KEEPALIVE, KEEPALIVE_BYTES, KEEPALIVE_PACKETS, TsStream
from .ts_player import TsPlayer

__all__ = ["play"]

log = logging.getLogger(__name__)


async def play(
    stream: TsStream,
    player: TsPlayer,
    send: Callable[[bytes], Awaitable[None]],
    *,
    finished: Callable[[], bool] = lambda: False,
    segment_sent: Callable[[], None] = lambda: None,
    keepalive: float = 0.0,
) -> str:
    """Send ``stream`` to ``player`` through ``send`` until it ends; returns why it ended.

    Before the first media, nothing goes out for ``keepalive`` seconds, then a null packet every
    :data:`~.ts.KEEPALIVE` seconds (``keepalive`` 0: nothing at all until media — a media
    server's probe, Emby's, that reads null packets first may misjudge the stream).
    ``finished`` says the upstream ended (finished content): the player ends once sent all;
    ``segment_sent`` is called after each segment sent whole (not after null packets, nor
    after media sent as it arrived). ``send(b"")`` must write what an offer left owed.
    """
    with stream.joined(player):
        first_null = trio.current_time() + keepalive if keepalive > 0 else math.inf
        last_send = -math.inf
        while True:
            if player.owing:
                player.owing = False
                await send(b"")
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
                if not stream.live:
                    segment_sent()
                last_send = trio.current_time()
                continue
            if stream.closed or finished():
                return "channel ended"
            if player.cursor is not None and stream.live:
                await stream.idle(player)  # the stream offers it what arrives, nulls in a stall
                continue
            now = trio.current_time()
            if player.cursor is None:
                # Before media: null packets from ``first_null`` on.
                deadline = max(first_null, last_send + KEEPALIVE)
            else:
                # Null packets once the next segment is overdue (a stall), never between
                # segments arriving on time.
                deadline = max(last_send + KEEPALIVE, stream.due)
            if now >= deadline:
                await send(null_packets(KEEPALIVE_PACKETS))
                player.sent_bytes += KEEPALIVE_BYTES
                last_send = trio.current_time()
                continue
            if player.cursor is not None and deadline == stream.due:
                await stream.wait_due()  # media flows: timed once for every player
            else:
                await stream.wait(deadline)
