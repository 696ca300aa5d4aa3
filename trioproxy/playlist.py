"""HLS playlists: reading the upstream's, writing ours. Pure functions, no I/O, no Trio."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import m3u8

from .window import Segment, rounded_duration

__all__ = [
    "PlaylistError",
    "UpstreamPlaylist",
    "UpstreamSegment",
    "parse_media_playlist",
    "render_media_playlist",
]


class PlaylistError(ValueError):
    """The upstream answered something that is not a usable HLS media playlist."""


@dataclass(frozen=True, slots=True)
class UpstreamSegment:
    sequence: int
    uri: str
    """Absolute: resolved against the playlist's final URL."""
    duration: float
    discontinuity: bool
    title: str = ""


@dataclass(frozen=True, slots=True)
class UpstreamPlaylist:
    media_sequence: int
    target_duration: float | None
    segments: tuple[UpstreamSegment, ...]
    endlist: bool

    @property
    def last_sequence(self) -> int | None:
        return self.segments[-1].sequence if self.segments else None


def parse_media_playlist(text: str, url: str) -> UpstreamPlaylist:
    """Parse an upstream media playlist fetched from ``url``; raise :class:`PlaylistError`."""
    text = text.lstrip("\ufeff")
    if not text.startswith("#EXTM3U"):
        raise PlaylistError("not an HLS playlist (no #EXTM3U header)")
    try:
        parsed = m3u8.loads(text, uri=url)
    except Exception as exc:  # m3u8 raises many kinds of errors on malformed input
        raise PlaylistError(f"malformed playlist: {exc}") from exc
    if parsed.is_variant:
        raise PlaylistError("a master playlist where a media playlist was expected")
    media_sequence = parsed.media_sequence or 0
    segments = []
    for index, seg in enumerate(parsed.segments):
        duration = seg.duration
        if duration is None or not duration >= 0 or duration > 3600:
            raise PlaylistError(f"segment {index} has no valid #EXTINF duration")
        if not seg.uri:
            raise PlaylistError(f"segment {index} has no URI")
        segments.append(
            UpstreamSegment(
                sequence=media_sequence + index,
                uri=seg.absolute_uri,
                duration=float(duration),
                discontinuity=bool(seg.discontinuity),
                title=seg.title or "",
            )
        )
    target = parsed.target_duration
    return UpstreamPlaylist(
        media_sequence=media_sequence,
        target_duration=float(target) if target else None,
        segments=tuple(segments),
        endlist=bool(parsed.is_endlist),
    )


def render_media_playlist(
    segments: Sequence[Segment],
    *,
    target_duration: int,
    segment_uri: Callable[[Segment], str],
    endlist: bool = False,
) -> str:
    """Our media playlist for ``segments`` (oldest first), valid under RFC 8216.

    ``target_duration`` must be the channel's sticky maximum; it is raised here if a listed
    segment would exceed it, so the result is valid whatever the caller passes.
    """
    if not segments:
        raise ValueError("a media playlist needs at least one segment")
    first = segments[0]
    target = max([target_duration, 1, *(rounded_duration(s.duration) for s in segments)])
    discontinuity_sequence = first.discontinuity_count - (1 if first.discontinuity else 0)
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        f"#EXT-X-TARGETDURATION:{target}",
        f"#EXT-X-MEDIA-SEQUENCE:{first.sequence}",
    ]
    if discontinuity_sequence:
        lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuity_sequence}")
    for segment in segments:
        if segment.discontinuity:
            lines.append("#EXT-X-DISCONTINUITY")
        lines.append(f"#EXTINF:{segment.duration:.3f},{_title(segment.title)}")
        lines.append(segment_uri(segment))
    if endlist:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def _title(title: str) -> str:
    return title.replace("\r", " ").replace("\n", " ")
