"""The simulated engine's MPEG-TS playback: one continuous stream per session, paced in real time.

What ``/ace/getstream`` hands out as ``playback_url``: the session's media as one transport
stream, looped seamlessly (clocks shifted, counters continued), each segment's bytes sent in a
burst when the engine has it and nothing in between, as an engine relays what the swarm brings.
Nothing is sent while the session prebuffers. :class:`TsFaults` makes it misbehave the ways
engines do: go silent with the connection open, close it, lose bytes in the middle of a packet,
send garbage, change the program (a PID moves, the PMT's version changes) or jump its clocks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import trio
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable

from .mpegts import PACKET_SIZE, move_pid, shift

__all__ = [
    "CHUNK",
    "GARBAGE",
    "PTS_JUMP",
    "STREAM_PREFIX",
    "TsFaults",
    "is_stream_path",
    "serve_stream",
]

STREAM_PREFIX = "/ace/r/"
"""Playback URLs of TS sessions: ``/ace/r/<key>/<session>``."""
CHUNK = 32 * 1024
"""Bytes per body message: not a whole number of packets, so packets straddle reads."""
GARBAGE = b"<html><body>502 Bad Gateway</body></html>\n" + bytes(range(256)) * 4
"""Bytes that are no transport stream (sync bytes among them, never 188 apart)."""
PTS_JUMP = 3600 * 90_000
"""How far the clocks jump (:attr:`TsFaults.pts_jump_at`): an hour."""
CUT_BYTES = 100
MOVED_PID = 0x1FF0
"""Where a program change moves the first elementary stream."""


def is_stream_path(path: str) -> bool:
    return path.startswith(STREAM_PREFIX)


@dataclass
class TsFaults:
    """What one session's TS stream does wrong; segments counted from the stream's first."""

    stall_after: int | None = None
    """Segments sent, then silence: the connection stays open and nothing more comes."""
    disconnect_after: int | None = None
    """Segments sent, then the engine ends the response."""
    cut: frozenset[int] = frozenset()
    """Segments that lose :data:`CUT_BYTES` in the middle of a packet."""
    garbage: frozenset[int] = frozenset()
    """Segments :data:`GARBAGE` comes before."""
    program_change_at: int | None = None
    """From this segment on, the stream on PID ``moved_from`` is carried on :data:`MOVED_PID`
    and the PMT says so under a new version."""
    moved_from: int = 0x100
    pts_jump_at: int | None = None
    """From this segment on, every clock is :data:`PTS_JUMP` ahead."""
    join_at: int = 0
    """Packets left out of the first segment: the stream begins mid-segment, before a
    keyframe and the PAT (an engine joining a broadcast)."""


def faulty_segment(data: bytes, n: int, faults: TsFaults) -> bytes:
    """Segment ``n`` of the stream as ``faults`` make it."""
    if faults.pts_jump_at is not None and n >= faults.pts_jump_at:
        data = shift(data, PTS_JUMP, {})
    if faults.program_change_at is not None and n >= faults.program_change_at:
        data = move_pid(data, faults.moved_from, MOVED_PID)
    if n in faults.cut:
        at = min(len(data) // 2, 10 * PACKET_SIZE) + 50
        data = data[:at] + data[at + CUT_BYTES :]
    if n == 0:
        data = data[faults.join_at * PACKET_SIZE :]
    if n in faults.garbage:
        data = GARBAGE + data
    return data


@dataclass
class StreamState:
    """A session's TS connections, as tests look at them."""

    connections: int = 0
    """Playback connections made."""
    open: int = 0
    """Playback connections open now."""
    segments_sent: list[int] = field(default_factory=list)


async def serve_stream(
    *,
    state: StreamState,
    available_at: Callable[[int], float],
    segment: Callable[[int], bytes],
    stopped: Callable[[], bool],
    faults: Callable[[], TsFaults],
    receive: ASGIReceiveCallable,
    send: ASGISendCallable,
) -> None:
    """Answer one playback connection: segment ``n`` (``segment(n)``) goes out at
    ``available_at(n)``, until the client leaves, the session is stopped or a fault ends it."""
    state.connections += 1
    state.open += 1
    try:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"video/mp2t")],
                "trailers": False,
            }
        )
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_until_disconnect, receive, nursery.cancel_scope)
            await _send_segments(state, available_at, segment, stopped, faults, send)
            nursery.cancel_scope.cancel()
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        state.open -= 1


async def _until_disconnect(receive: ASGIReceiveCallable, scope: trio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


async def _send_segments(
    state: StreamState,
    available_at: Callable[[int], float],
    segment: Callable[[int], bytes],
    stopped: Callable[[], bool],
    faults: Callable[[], TsFaults],
    send: ASGISendCallable,
) -> None:
    n = 0
    while not stopped():
        fault = faults()
        if fault.disconnect_after is not None and n >= fault.disconnect_after:
            return
        if fault.stall_after is not None and n >= fault.stall_after:
            await trio.sleep_forever()
        await trio.sleep_until(available_at(n))
        if stopped():
            return
        data = faulty_segment(segment(n), n, fault)
        for at in range(0, len(data), CHUNK):
            body = data[at : at + CHUNK]
            await send({"type": "http.response.body", "body": body, "more_body": True})
        state.segments_sent.append(n)
        n += 1
