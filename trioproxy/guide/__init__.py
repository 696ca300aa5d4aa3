"""The guide (XMLTV), pure: decoding a fetched guide, filtering it to the channels wanted as it
arrives, and the filtered guide that is served.

- :mod:`.decoding`: gzip, zlib or plain bytes → XML, decoded in bounded pieces.
- :mod:`.xmltv`: the streaming filter: keeps ``<channel>`` and ``<programme>`` elements of the
  wanted tvg-ids, drops everything else as it goes.
- :mod:`.document`: the filtered guide as served (``/epg.xml``), merged from every source, and
  the programmes of one channel as plain data.

Nothing here does I/O or imports trio or httpx; it may import :mod:`trioproxy.errors` and
nothing else of the package.
"""

from __future__ import annotations

from .decoding import Decoder
from .document import Guide, GuideBuilder, build_guide, render_part
from .xmltv import GuideError, GuidePart, Programme, XmltvFilter, parse_time

__all__ = [
    "Decoder",
    "Guide",
    "GuideBuilder",
    "GuideError",
    "GuidePart",
    "Programme",
    "XmltvFilter",
    "build_guide",
    "parse_time",
    "render_part",
]
