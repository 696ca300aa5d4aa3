"""What players of one channel see, as data: the channel owns it, its upstream session fills it.

A :class:`Feed` outlives the upstream session that writes into it: a session that ends (or is
replaced) leaves the window, the resources and what was learned about the upstream behind. The
session reports its progress only through this data and the two events in it; it never calls
back into the channel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from ..hls.rendered import RenderedPlaylists
from ..hls.segmenter import Segmenter
from ..hls.variants import Variant
from ..hls.window import SegmentWindow
from ..upstream.resources import ResourceCache
from ..upstream.stat import EngineStat

__all__ = ["Feed"]


@dataclass(eq=False)
class Feed:
    window: SegmentWindow
    resources: ResourceCache
    """Init sections and keys, fetched once and served by the proxy."""
    ready: trio.Event = field(default_factory=trio.Event)
    """Set once the first playlist can be answered (by the session), or when the channel ends
    (by the channel): waiting players wake."""
    ended: trio.Event = field(default_factory=trio.Event)
    """Set once the upstream listed ``#EXT-X-ENDLIST`` and every segment it listed is in."""
    variant: Variant | None = None
    """The variant followed, when the upstream answered a master playlist."""
    serve_whole: bool = False
    """Finished content (``#EXT-X-ENDLIST`` from the start): the whole list is served."""
    independent_segments: bool = False
    engine_stat: EngineStat | None = None
    """The engine's last ``stat_url`` answer about the session (by the health check)."""
    last_error: str = ""
    """Why the last upstream segment could not be had (by the fetch loop); players waiting for
    the first segments are told it."""
    on_append: Callable[[], None] = field(default=lambda: None)
    """Called after each segment appended to the window (the channel's TS players read it)."""
    on_live: Callable[[Segmenter | None], None] = field(default=lambda _: None)
    """Called when a session begins reading: with the segmenter when it reads MPEG-TS (the TS
    players then get media as it arrives), None when it reads HLS."""
    on_packets: Callable[[bytes], None] = field(default=lambda _: None)
    """Called with the whole packets each read brought (empty: the stream ended)."""
    target_duration: float | None = None
    """The upstream's target duration, once a playlist told it (kept across sessions)."""
    advanced_at: float = 0.0
    """When the window last advanced (a segment or a gap), or the current session opened; on
    an MPEG-TS upstream, when media last arrived (the segmenter cuts segments of it later)."""
    segmenter: Segmenter | None = None
    """What cuts an MPEG-TS upstream into segments, once one was read (kept across sessions:
    a new session is spliced in after a discontinuity)."""
    rendered: RenderedPlaylists = field(default_factory=RenderedPlaylists)
    """Our media playlist, rendered once per :attr:`playlist_state` and URL variant."""

    @property
    def playlist_state(self) -> tuple[int, bool, bool, bool]:
        """Changes whenever our media playlist may: the window's version and how it is served."""
        return (
            self.window.version,
            self.ended.is_set(),
            self.serve_whole,
            self.independent_segments,
        )

    def limit(self, targets: float, seconds: float) -> float:
        """A failure threshold: ``targets`` target durations once one is known, at most
        ``seconds`` (``targets`` 0: ``seconds`` alone)."""
        if targets > 0 and self.target_duration:
            return min(seconds, targets * self.target_duration)
        return seconds
