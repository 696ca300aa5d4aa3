"""The channel list as an extended M3U for IPTV apps and media servers. Pure rendering.

::

    #EXTM3U url-tvg="https://epg.example/guide.xml" x-tvg-url="https://epg.example/guide.xml"
    #EXTINF:-1 tvg-id="bbc1.uk" tvg-logo="https://logos.example/bbc1.png" group-title="UK",BBC One
    http://proxy.lan:8000/ace/manifest.m3u8?id=0123456789abcdef0123456789abcdef01234567

M3U has no escapes, so text is made safe rather than quoted: line breaks and other control
characters become spaces (nothing can start a line of its own); a ``"`` becomes ``'`` in names and
attributes, and ``%22`` in URLs (no attribute can end early, and Kodi, which takes the name from
after the last ``"`` of the line, finds it). Every ``#EXTINF`` carries all three attributes, so
a name always follows a closing quote and a ``,`` in it stays part of it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from urllib.parse import quote

from ..config.channels import ChannelEntry

__all__ = ["M3U_TYPE", "render_m3u"]

M3U_TYPE = "audio/x-mpegurl; charset=utf-8"
"""What IPTV apps and media servers expect of a channel list (``.m3u``); the HLS type
(``application/vnd.apple.mpegurl``) would tell a player the list itself is a stream to play."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f\x80-\x9f\u2028\u2029]+")
_URL_SAFE = "!#$%&'()*+,-./:;=?@[]_~"
"""Characters of a URL kept as they are; anything else (``"``, spaces, non-ASCII) is %-encoded."""


def _text(value: str) -> str:
    return _CONTROL.sub(" ", value).replace('"', "'").strip()


def _url(value: str) -> str:
    return quote(_CONTROL.sub("", value), safe=_URL_SAFE)


def render_m3u(
    channels: Iterable[ChannelEntry],
    url_of: Callable[[ChannelEntry], str],
    epg_url: str | None = None,
) -> str:
    """The M3U listing ``channels`` in order, each played from ``url_of(channel)``."""
    header = "#EXTM3U"
    if epg_url:
        epg = _url(epg_url)
        header += f' url-tvg="{epg}" x-tvg-url="{epg}"'
    lines = [header]
    for channel in channels:
        attributes = (
            f'tvg-id="{_text(channel.tvg_id)}" tvg-logo="{_url(channel.logo)}" '
            f'group-title="{_text(channel.group)}"'
        )
        lines.append(f"#EXTINF:-1 {attributes},{_text(channel.name)}")
        lines.append(_url(url_of(channel)))
    return "\n".join(lines) + "\n"
