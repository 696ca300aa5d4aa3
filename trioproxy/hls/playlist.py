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
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from .m3u import PlaylistError, attribute_list, format_attributes, lines, quoted, resolve
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

_LEADING_NUMBER = re.compile(r"\s*[0-9]+(?:\.[0-9]*)?(?=\s|$)")
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


def is_master_playlist(text: str) -> bool:
    """Whether ``text`` is a master (multivariant) playlist rather than a media playlist."""
    return any(line.name == "EXT-X-STREAM-INF" for line in lines(text))


def _integer(value: str, tag: str) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise PlaylistError(f"#{tag} is not a whole number: {value[:40]!r}") from None
    if number < 0:
        raise PlaylistError(f"#{tag} is negative")
    return number


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


def _later(moment: datetime, seconds: float) -> datetime | None:
    try:
        return moment + timedelta(seconds=seconds)
    except OverflowError:  # a date near the end of time: dropped, never fatal
        return None


def _date_time(value: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None  # a malformed date is dropped, never fatal
    return moment if moment.tzinfo is not None else None


def parse_media_playlist(text: str, url: str) -> UpstreamPlaylist:
    """Parse an upstream media playlist fetched from ``url``; raise :class:`PlaylistError`."""
    media_sequence = 0
    discontinuity_sequence = 0
    target: float | None = None
    endlist = independent = False
    playlist_type: str | None = None
    skipped = 0
    raw: list[UpstreamSegment] = []
    # What applies to the next segment only ...
    duration: float | None = None
    title = ""
    byterange_text: str | None = None
    discontinuity = gap = False
    date_time: datetime | None = None
    line_date_time: datetime | None = None
    # ... and what applies until changed.
    init: Resource | None = None
    keys: dict[str, Key] = {}
    previous: UpstreamSegment | None = None
    for line in lines(text):
        tag, value = line.name, line.value
        if line.is_uri:
            if duration is None:
                raise PlaylistError(f"segment {len(raw)} has no #EXTINF")
            uri = resolve(url, value)
            byterange = None
            if byterange_text is not None:
                previous_end = None
                if previous is not None and previous.uri == uri and previous.byterange:
                    previous_end = previous.byterange.offset + previous.byterange.length
                byterange = _byterange(byterange_text, previous_end)
            if date_time is None and previous and previous.program_date_time and not discontinuity:
                date_time = _later(previous.program_date_time, previous.duration)
            number = (previous.discontinuity_number if previous else discontinuity_sequence) + (
                1 if discontinuity else 0
            )
            previous = UpstreamSegment(
                sequence=0,  # numbered below, once the media sequence is known for sure
                uri=uri,
                duration=duration,
                discontinuity=discontinuity,
                title=title,
                byterange=byterange,
                init=init,
                keys=tuple(k for k in keys.values() if k.method != "NONE"),
                program_date_time=date_time,
                date_time_listed=line_date_time is not None,
                discontinuity_number=number,
                gap=gap,
            )
            raw.append(previous)
            duration, title, byterange_text = None, "", None
            discontinuity = gap = False
            date_time = line_date_time = None
            continue
        if tag == "EXTINF":
            length_text, _, title = value.partition(",")
            # IPTV lists put attributes after the duration: "#EXTINF:5.0 tvg-id=...,Title".
            leading = _LEADING_NUMBER.match(length_text)
            if leading is None:
                raise PlaylistError(f"segment {len(raw)} has no valid #EXTINF duration")
            duration = float(leading.group(0))
            if not math.isfinite(duration) or not 0 <= duration <= MAX_DURATION:
                raise PlaylistError(f"segment {len(raw)} has no valid #EXTINF duration")
            title = title.strip()
        elif tag == "EXT-X-BYTERANGE":
            byterange_text = value
        elif tag == "EXT-X-DISCONTINUITY":
            discontinuity = True
        elif tag == "EXT-X-GAP":
            gap = True
        elif tag == "EXT-X-PROGRAM-DATE-TIME":
            date_time = line_date_time = _date_time(value)
        elif tag == "EXT-X-MAP":
            attributes = attribute_list(value)
            if "URI" not in attributes:
                raise PlaylistError("#EXT-X-MAP without URI")
            map_range = None
            if "BYTERANGE" in attributes:
                map_range = _byterange(attributes["BYTERANGE"], 0)
            init = Resource(resolve(url, attributes["URI"]), map_range)
        elif tag == "EXT-X-KEY":
            key = _key(value, url)
            if key.method == "NONE":
                keys.clear()
            else:
                keys[key.keyformat] = key
        elif tag == "EXT-X-MEDIA-SEQUENCE":
            media_sequence = _integer(value, tag)
        elif tag == "EXT-X-DISCONTINUITY-SEQUENCE":
            discontinuity_sequence = _integer(value, tag)
        elif tag == "EXT-X-TARGETDURATION":
            target = float(_integer(value, tag)) or None
        elif tag == "EXT-X-ENDLIST":
            endlist = True
        elif tag == "EXT-X-PLAYLIST-TYPE":
            playlist_type = value.strip().upper() or None
        elif tag == "EXT-X-INDEPENDENT-SEGMENTS":
            independent = True
        elif tag == "EXT-X-SKIP":
            skipped = _integer(attribute_list(value).get("SKIPPED-SEGMENTS", "0"), tag)
        elif tag == "EXT-X-STREAM-INF":
            raise PlaylistError("a master playlist where a media playlist was expected")
        # Anything else (EXT-X-PART, EXT-X-PRELOAD-HINT, EXT-X-DATERANGE, vendor tags ...) is
        # not carried over: it says nothing about the whole segments we serve.
    first = media_sequence + skipped
    segments = tuple(replace(s, sequence=first + i) for i, s in enumerate(raw))
    return UpstreamPlaylist(
        media_sequence=media_sequence,
        target_duration=target,
        segments=segments,
        endlist=endlist,
        discontinuity_sequence=discontinuity_sequence,
        playlist_type=playlist_type,
        independent_segments=independent,
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
