"""An MPEG-TS player on a real socket that tells media from the null packets a proxy sends while
no media flows, and notes when each arrived.

:class:`TsReader` reads one ``format=ts`` stream through an ``httpx.AsyncClient`` until
cancelled or until the server ends the response, counting, per chunk received, the transport
packets that carry media and the null packets (PID 0x1FFF). From that record it answers what a
viewer would notice: the longest stretch without media, whether the connection stayed open, and
how many null packets kept it busy meanwhile.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import httpx
import trio

from ..hls.mpegts import PACKET_SIZE

__all__ = ["TsArrival", "TsReader"]

NULL_PID = 0x1FFF


@dataclass(frozen=True, slots=True)
class TsArrival:
    """One chunk of the response body: when it arrived, and its packets by kind."""

    at: float
    media: int
    null: int


@dataclass
class TsReader:
    url: str
    status: int | None = None
    arrivals: list[TsArrival] = field(default_factory=list)
    ended_by_server: bool = False
    """The server ended the response (the stream is over), rather than the reader leaving."""
    connected: trio.Event = field(default_factory=trio.Event)
    """Set once the response's head arrived."""

    async def run(self, client: httpx.AsyncClient) -> None:
        """Read until cancelled or the server ends the response."""
        rest = b""
        async with client.stream("GET", self.url) as response:
            self.status = response.status_code
            self.connected.set()
            # No checkpoint in the loop's body: a cancellation arrives inside the iterator,
            # which it ends, and leaves no generator open behind.
            async for chunk in response.aiter_raw():
                data = rest + chunk
                whole = len(data) - len(data) % PACKET_SIZE
                rest = data[whole:]
                null = sum(
                    1
                    for pos in range(0, whole, PACKET_SIZE)
                    if ((data[pos + 1] & 0x1F) << 8 | data[pos + 2]) == NULL_PID
                )
                media = whole // PACKET_SIZE - null
                self.arrivals.append(TsArrival(trio.current_time(), media, null))
        self.ended_by_server = True

    @property
    def media_packets(self) -> int:
        return sum(a.media for a in self.arrivals)

    def media_times(self) -> list[float]:
        """When media arrived (one time per chunk that carried any)."""
        return [a.at for a in self.arrivals if a.media]

    def longest_media_gap(self, start: float = -float("inf"), end: float = float("inf")) -> float:
        """The longest time between two arrivals of media, among those from ``start`` to
        ``end`` (and the last one before ``start``)."""
        times = self.media_times()
        before = [t for t in times if t < start]
        inside = [t for t in times if start <= t <= end]
        around = before[-1:] + inside
        return max((b - a for a, b in itertools.pairwise(around)), default=0.0)

    def null_packets(self, start: float, end: float) -> int:
        """Null packets that arrived from ``start`` to ``end``."""
        return sum(a.null for a in self.arrivals if start <= a.at <= end)

    def media_after(self, at: float) -> int:
        """Media packets that arrived after ``at``."""
        return sum(a.media for a in self.arrivals if a.at > at)
