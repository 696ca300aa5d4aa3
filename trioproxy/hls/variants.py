"""Master (multivariant) playlists: which variant a channel follows. Pure functions, no I/O.

A channel serves one media playlist, so from a master playlist we pick one variant: the highest
bandwidth by default, or the highest that fits the operator's limits (bandwidth, resolution).
Variants and renditions are m3u8's; their attributes are kept as listed, to be written back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import m3u8
from m3u8.parser import remove_quotes

from .m3u import PlaylistError, format_attributes, load, quoted, resolve

__all__ = [
    "Rendition",
    "Variant",
    "VariantLimits",
    "parse_master_playlist",
    "render_master_playlist",
    "select_variant",
]

_UNQUOTED = {
    "TYPE",
    "DEFAULT",
    "AUTOSELECT",
    "FORCED",
    "BANDWIDTH",
    "AVERAGE-BANDWIDTH",
    "RESOLUTION",
    "FRAME-RATE",
    "HDCP-LEVEL",
    "VIDEO-RANGE",
}
"""Attributes whose values are enumerated strings or numbers; all others are quoted strings."""


@dataclass(frozen=True, slots=True)
class Rendition:
    """An ``#EXT-X-MEDIA`` entry: an alternative audio, subtitle or video rendition."""

    type: str
    group_id: str
    name: str
    uri: str | None
    default: bool = False
    language: str | None = None
    attributes: tuple[tuple[str, str], ...] = ()
    """All of the tag's attributes as listed (values unquoted)."""


@dataclass(frozen=True, slots=True)
class Variant:
    uri: str
    bandwidth: int
    resolution: tuple[int, int] | None = None
    codecs: str | None = None
    audio: str | None = None
    subtitles: str | None = None
    renditions: tuple[Rendition, ...] = ()
    """The ``#EXT-X-MEDIA`` renditions of this variant's audio and subtitle groups."""
    attributes: tuple[tuple[str, str], ...] = ()
    """All of the ``#EXT-X-STREAM-INF`` attributes as listed (values unquoted)."""

    @property
    def separate_renditions(self) -> tuple[Rendition, ...]:
        """The renditions with playlists of their own: a player needs them proxied too."""
        return tuple(r for r in self.renditions if r.uri is not None)

    @property
    def height(self) -> int:
        return self.resolution[1] if self.resolution else 0


@dataclass(frozen=True, slots=True)
class VariantLimits:
    """The operator's choice: 0 means no limit."""

    max_bandwidth: int = 0
    max_height: int = 0


def _listed(attributes: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """A tag's attributes as m3u8 read them (``group_id``), under their names (``GROUP-ID``)."""
    pairs = []
    for name, value in attributes.items():
        if not name:
            continue  # a value without a name: junk m3u8 keeps under ""
        # FRAME-RATE is the one m3u8 reads as a float; §4.3.4.2 writes it with 3 decimals.
        text = f"{value:.3f}" if isinstance(value, float) else remove_quotes(str(value))
        pairs.append((name.upper().replace("_", "-"), text))
    return tuple(pairs)


def _rendition(media: m3u8.Media, attributes: dict[str, Any], url: str) -> Rendition | None:
    try:
        uri = resolve(url, media.uri) if media.uri else None
    except PlaylistError:
        return None
    return Rendition(
        type=(media.type or "").upper(),
        group_id=media.group_id or "",
        name=media.name or "",
        uri=uri,
        default=(media.default or "").upper() == "YES",
        language=media.language,
        attributes=_listed(attributes),
    )


def parse_master_playlist(text: str, url: str) -> list[Variant]:
    """The variants of a master playlist fetched from ``url``, in listed order.

    I-frame playlists and variants whose URI is not an http(s) URL are left out.
    """
    document, _ = load(text, url)
    renditions = [
        rendition
        for media, attributes in zip(document.media, document.data["media"], strict=True)
        if (rendition := _rendition(media, attributes, url)) is not None
    ]
    variants = []
    for playlist, listed in zip(document.playlists, document.data["playlists"], strict=True):
        try:
            absolute = resolve(url, playlist.uri or "")
        except PlaylistError:
            continue
        info = playlist.stream_info
        audio, subtitles = info.audio, info.subtitles
        variants.append(
            Variant(
                uri=absolute,
                bandwidth=info.bandwidth or info.average_bandwidth or 0,
                resolution=info.resolution,
                codecs=info.codecs,
                audio=audio,
                subtitles=subtitles,
                renditions=tuple(
                    r
                    for r in renditions
                    if (r.type == "AUDIO" and r.group_id == audio)
                    or (r.type == "SUBTITLES" and r.group_id == subtitles)
                ),
                attributes=_listed(listed["stream_info"]),
            )
        )
    if not variants:
        raise PlaylistError("a master playlist that lists no usable variant")
    return variants


def select_variant(variants: list[Variant], limits: VariantLimits = VariantLimits()) -> Variant:
    """The best variant within ``limits``; if none fits, the smallest one.

    Best is the highest bandwidth, then the highest resolution; ties go to the one listed first.
    """
    if not variants:
        raise ValueError("no variants to choose from")

    def fits(variant: Variant) -> bool:
        if limits.max_bandwidth and variant.bandwidth > limits.max_bandwidth:
            return False
        return not (limits.max_height and variant.height > limits.max_height)

    def rank(variant: Variant) -> tuple[int, int]:
        return variant.bandwidth, variant.height

    fitting = [v for v in variants if fits(v)]
    if fitting:
        return max(fitting, key=rank)  # max keeps the first of equals
    return min(variants, key=rank)


def _attributes(pairs: tuple[tuple[str, str], ...], **replace: str) -> str:
    values = {}
    for name, value in pairs:
        if name in ("URI", "CLOSED-CAPTIONS", "VIDEO"):
            continue  # our URIs replace theirs; caption and video groups are not proxied
        values[name] = value if name in _UNQUOTED else quoted(value)
    values.update({name: quoted(value) for name, value in replace.items()})
    return format_attributes(values)


def render_master_playlist(
    variant: Variant, media_uri: str, rendition_uri: Callable[[int], str]
) -> str:
    """A master playlist of the one variant we follow and its renditions, all at our URLs.

    ``rendition_uri(n)`` is the URL of ``variant.separate_renditions[n]``; renditions without a
    playlist of their own (carried in the variant's segments) are listed as they are.
    """
    lines_out = ["#EXTM3U", "#EXT-X-VERSION:4"]
    separate = variant.separate_renditions
    for rendition in variant.renditions:
        if rendition.uri is None:
            lines_out.append("#EXT-X-MEDIA:" + _attributes(rendition.attributes))
        else:
            uri = rendition_uri(separate.index(rendition))
            lines_out.append("#EXT-X-MEDIA:" + _attributes(rendition.attributes, URI=uri))
    lines_out.append("#EXT-X-STREAM-INF:" + _attributes(variant.attributes))
    lines_out.append(media_uri)
    return "\n".join(lines_out) + "\n"
