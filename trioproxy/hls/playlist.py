"""HLS media playlists: reading the upstream's, writing ours. Pure functions, no I/O, no Trio.

What we read (RFC 8216 §4.3): segments with their durations, byte ranges, initialization sections
(``#EXT-X-MAP``), keys, discontinuities, program date-times and gaps; the playlist's media and
discontinuity sequence, target duration and end. Low-latency parts, preload hints and unknown tags
are skipped. What we write lists whole segments only (byte ranges are fetched and served whole),
with every URI pointing at the proxy.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from m3u8.model import InitializationSection

from .m3u import (
    PlaylistError,
    attribute_list,
    date_time,
    format_attributes,
    load,
    normalized,
    quoted,
    resolve,
    uri_lines,
)
from .window import KeyTag, Segment, rounded_duration

__all__ = [
    "ByteRange",
    "Key",
    "PlaylistError",
    "Resource",
    "UpstreamPlaylist",
    "UpstreamSegment",
    "is_master_playlist",
    "parse_media_playlist",
    "render_media_playlist",
]

MAX_DURATION = 3600.0
"""Longest EXTINF accepted: anything longer is a broken playlist."""


@dataclass(frozen=True, slots=True)
class ByteRange:
    length: int
    offset: int

    @property
    def header(self) -> str:
        """The HTTP ``Range`` header asking for exactly these bytes."""
        return f"bytes={self.offset}-{self.offset + self.length - 1}"


@dataclass(frozen=True, slots=True)
class Resource:
    """Bytes at an absolute URL, or a sub-range of them: a segment, an init section, a key."""

    uri: str
    byterange: ByteRange | None = None


@dataclass(frozen=True, slots=True)
class Key:
    """An upstream ``#EXT-X-KEY``. ``uri`` is absolute when it is http(s), else as listed."""

    method: str
    uri: str | None = None
    iv: str | None = None
    keyformat: str = "identity"
    keyformatversions: str | None = None

    @property
    def fetchable(self) -> bool:
        """A key file we proxy: AES-128 or SAMPLE-AES in the plain ``identity`` format."""
        return (
            self.keyformat == "identity"
            and self.uri is not None
            and self.uri.startswith(("http://", "https://"))
        )


@dataclass(frozen=True, slots=True)
class UpstreamSegment:
    sequence: int
    uri: str
    """Absolute: resolved against the playlist's final URL."""
    duration: float
    discontinuity: bool
    title: str = ""
    byterange: ByteRange | None = None
    init: Resource | None = None
    keys: tuple[Key, ...] = ()
    program_date_time: datetime | None = None
    date_time_listed: bool = False
    discontinuity_number: int = 0
    """The upstream's discontinuity sequence number for this segment."""
    gap: bool = False
    """Listed with ``#EXT-X-GAP``: the upstream says it has no media for it."""

    @property
    def resource(self) -> Resource:
        return Resource(self.uri, self.byterange)


@dataclass(frozen=True, slots=True)
class UpstreamPlaylist:
    media_sequence: int
    target_duration: float | None
    segments: tuple[UpstreamSegment, ...]
    endlist: bool
    discontinuity_sequence: int = 0
    playlist_type: str | None = None
    independent_segments: bool = False

    @property
    def last_sequence(self) -> int | None:
        return self.segments[-1].sequence if self.segments else None


_MASTER_TAG = re.compile(r"^[^\S\n]*#EXT-X-STREAM-INF", re.MULTILINE)


def is_master_playlist(text: str) -> bool:
    """Whether ``text`` is a master (multivariant) playlist rather than a media playlist.

    The tag m3u8 takes as the sign of one (``is_variant``), looked for without a full parse:
    the caller parses the playlist right after, as one kind or the other.
    """
    return _MASTER_TAG.search(normalized(text)) is not None


class _Tags:
    """The tags we read ourselves, as m3u8's ``custom_tags_parser`` for one media playlist.

    ``#EXT-X-KEY``: m3u8 keeps one key per segment, the last listed; HLS has one in force per
    ``KEYFORMAT`` (an identity key beside FairPlay's, say). Each segment whose keys changed gets
    the ones in force as its custom value ``keys``; one without it has its predecessor's.
    ``#EXT-X-PROGRAM-DATE-TIME``: a date m3u8 would choke on (malformed, no zone, at the end
    of time) is dropped here rather than failing the playlist.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.in_force: dict[str, Key] = {}

    def __call__(self, line: str, lineno: int, data: dict[str, Any], state: dict[str, Any]) -> bool:
        if line.startswith("#EXT-X-KEY:"):
            key = _key(line[len("#EXT-X-KEY:") :], self.url)
            if key.method == "NONE":
                self.in_force.clear()
            else:
                self.in_force[key.keyformat] = key
            # What m3u8.parser.save_segment_custom_value does (not in its type stubs).
            segment = state.setdefault("segment", {})
            segment.setdefault("custom_parser_values", {})["keys"] = tuple(self.in_force.values())
            return True
        if line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            return date_time(line.partition(":")[2]) is None
        return False


def _byterange(value: str, previous_end: int | None) -> ByteRange:
    length_text, at, offset_text = value.strip().partition("@")
    try:
        length = int(length_text)
        offset = int(offset_text) if at else (previous_end or 0)
    except ValueError:
        raise PlaylistError(f"bad byte range {value[:40]!r}") from None
    if length <= 0 or offset < 0:
        raise PlaylistError(f"bad byte range {value[:40]!r}")
    return ByteRange(length, offset)


def _key(value: str, base: str) -> Key:
    attributes = attribute_list(value)
    method = attributes.get("METHOD", "").upper()
    if not method:
        raise PlaylistError("#EXT-X-KEY without METHOD")
    uri = attributes.get("URI")
    if uri is not None and not uri.startswith(("skd:", "data:", "urn:")):
        uri = resolve(base, uri)
    if method != "NONE" and uri is None:
        raise PlaylistError(f"#EXT-X-KEY METHOD={method} without URI")
    return Key(
        method=method,
        uri=uri,
        iv=attributes.get("IV"),
        keyformat=attributes.get("KEYFORMAT", "identity"),
        keyformatversions=attributes.get("KEYFORMATVERSIONS"),
    )


def _count(value: float | None, tag: str) -> int:
    if value is not None and value < 0:
        raise PlaylistError(f"#{tag} is negative")
    return int(value or 0)  # m3u8 reads each of them with int()


def _init(section: InitializationSection, url: str) -> Resource:
    byterange = _byterange(section.byterange, 0) if section.byterange is not None else None
    return Resource(resolve(url, section.uri or ""), byterange)


def parse_media_playlist(text: str, url: str) -> UpstreamPlaylist:
    """Parse an upstream media playlist fetched from ``url``; raise :class:`PlaylistError`."""
    document, read = load(text, url, _Tags(url))
    if document.is_variant:
        raise PlaylistError("a master playlist where a media playlist was expected")
    # m3u8 files a last #EXTINF (or LL-HLS parts) without its URI as a segment without one.
    listed = [s for s in document.segments if s.uri is not None]
    if len(listed) != uri_lines(read):
        raise PlaylistError(f"a URI without #EXTINF after segment {len(listed)}")
    media_sequence = _count(document.media_sequence, "EXT-X-MEDIA-SEQUENCE")
    discontinuity_sequence = _count(document.discontinuity_sequence, "EXT-X-DISCONTINUITY-SEQUENCE")
    target = _count(document.target_duration, "EXT-X-TARGETDURATION")
    if target > MAX_DURATION:  # we reload at this pace and tell our players to
        raise PlaylistError(f"#EXT-X-TARGETDURATION {target} is over {MAX_DURATION:g} s")
    skipped = _count(document.skip.skipped_segments if document.skip else 0, "EXT-X-SKIP")
    inits: dict[tuple[str | None, str | None], Resource] = {}
    for section in document.segment_map:  # every #EXT-X-MAP; None for one without attributes
        if section is None or section.uri is None:
            raise PlaylistError("#EXT-X-MAP without URI")
        inits[(section.uri, section.byterange)] = _init(section, url)
    segments: list[UpstreamSegment] = []
    previous: UpstreamSegment | None = None
    keys: tuple[Key, ...] = ()
    number = discontinuity_sequence
    for sequence, listing in enumerate(listed, media_sequence + skipped):
        duration = listing.duration
        if duration is None:
            raise PlaylistError(f"segment {len(segments)} has no #EXTINF")
        if not math.isfinite(duration) or not 0 <= duration <= MAX_DURATION:
            raise PlaylistError(f"segment {len(segments)} has no valid #EXTINF duration")
        uri = resolve(url, listing.uri or "")
        byterange = None
        if listing.byterange is not None:
            previous_end = None
            if previous is not None and previous.uri == uri and previous.byterange:
                previous_end = previous.byterange.offset + previous.byterange.length
            byterange = _byterange(listing.byterange, previous_end)
        init = None
        if listing.init_section is not None:
            init = inits[(listing.init_section.uri, listing.init_section.byterange)]
        keys = listing.custom_parser_values.get("keys", keys)
        listed_time = listing.program_date_time
        carried = previous is not None and previous.program_date_time is not None
        moment = listed_time or (
            listing.current_program_date_time if carried and not listing.discontinuity else None
        )
        number += 1 if listing.discontinuity else 0
        previous = UpstreamSegment(
            sequence=sequence,
            uri=uri,
            duration=duration,
            discontinuity=listing.discontinuity,
            title=(listing.title or "").strip(),
            byterange=byterange,
            init=init,
            keys=keys,
            program_date_time=moment,
            date_time_listed=listed_time is not None,
            discontinuity_number=number,
            gap=bool(listing.gap_tag),
        )
        segments.append(previous)
    return UpstreamPlaylist(
        media_sequence=media_sequence,
        target_duration=float(target) or None,
        segments=tuple(segments),
        endlist=bool(document.is_endlist),
        discontinuity_sequence=discontinuity_sequence,
        playlist_type=(document.playlist_type or "").upper() or None,
        independent_segments=bool(document.is_independent_segments),
    )


def render_media_playlist(
    segments: Sequence[Segment],
    *,
    target_duration: int,
    segment_uri: Callable[[Segment], str],
    resource_uri: Callable[[int], str] = lambda resource: f"r/{resource}",
    endlist: bool = False,
    start_offset: float | None = None,
    independent_segments: bool = False,
) -> str:
    """Our media playlist for ``segments`` (oldest first), valid under RFC 8216.

    ``target_duration`` must be the channel's sticky maximum; it is raised here if a listed
    segment would exceed it, so the result is valid whatever the caller passes.
    ``resource_uri`` names a proxied init section or key; ``start_offset`` adds ``#EXT-X-START``.
    """
    if not segments:
        raise ValueError("a media playlist needs at least one segment")
    first = segments[0]
    target = max([target_duration, 1, *(rounded_duration(s.duration) for s in segments)])
    discontinuity_sequence = first.discontinuity_count - (1 if first.discontinuity else 0)
    body: list[str] = []
    version = 3
    current_init: int | None = None
    current_keys: tuple[str, ...] = ()
    for index, segment in enumerate(segments):
        meta = segment.meta
        if segment.discontinuity:
            body.append("#EXT-X-DISCONTINUITY")
        key_lines = tuple(_key_line(key, segment, resource_uri) for key in meta.keys)
        if key_lines != current_keys:
            if not key_lines and current_keys:
                body.append("#EXT-X-KEY:METHOD=NONE")
            body.extend(key_lines)
            current_keys = key_lines
        for key in meta.keys:
            if key.keyformat or key.keyformatversions or key.method != "AES-128":
                version = max(version, 5)
        if meta.init is not None and (meta.init != current_init or segment.discontinuity):
            body.append(f"#EXT-X-MAP:URI={quoted(resource_uri(meta.init))}")
            version = max(version, 6)
        current_init = meta.init
        if meta.program_date_time is not None and (index == 0 or meta.date_time_listed):
            stamp = meta.program_date_time.isoformat(timespec="milliseconds")
            body.append(f"#EXT-X-PROGRAM-DATE-TIME:{stamp}")
        body.append(f"#EXTINF:{_duration(segment.duration)},{_title(segment.title)}")
        body.append(segment_uri(segment))
    head = ["#EXTM3U", f"#EXT-X-VERSION:{version}", f"#EXT-X-TARGETDURATION:{target}"]
    if start_offset is not None:
        head.append(f"#EXT-X-START:TIME-OFFSET={_duration(-abs(start_offset))}")
    if independent_segments:
        head.append("#EXT-X-INDEPENDENT-SEGMENTS")
    head.append(f"#EXT-X-MEDIA-SEQUENCE:{first.sequence}")
    if discontinuity_sequence:
        head.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuity_sequence}")
    if endlist:
        body.append("#EXT-X-ENDLIST")
    return "\n".join(head + body) + "\n"


def _key_line(key: KeyTag, segment: Segment, resource_uri: Callable[[int], str]) -> str:
    attributes = {"METHOD": key.method}
    if key.resource is not None:
        attributes["URI"] = quoted(resource_uri(key.resource))
    elif key.uri is not None:
        attributes["URI"] = quoted(key.uri)
    iv = key.iv
    if iv is None and key.method == "AES-128" and not key.keyformat:
        # Without an IV the upstream's media sequence number is the IV (§5.2); ours differ.
        iv = f"0x{(segment.upstream_sequence or 0) & (2**128 - 1):032x}"
    if iv is not None:
        attributes["IV"] = iv
    if key.keyformat:
        attributes["KEYFORMAT"] = quoted(key.keyformat)
    if key.keyformatversions:
        attributes["KEYFORMATVERSIONS"] = quoted(key.keyformatversions)
    return "#EXT-X-KEY:" + format_attributes(attributes)


def _duration(seconds: float) -> str:
    """Up to microseconds, at least milliseconds: ``2.000``, ``4.004``, ``1.234568``."""
    text = f"{seconds:.6f}"
    while text.endswith("0") and len(text.partition(".")[2]) > 3:
        text = text[:-1]
    return text


def _title(title: str) -> str:
    return title.replace("\r", " ").replace("\n", " ")
