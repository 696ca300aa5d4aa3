"""Named generic HLS sources as a kind of upstream: an origin with no session to open or stop.

Sources are configured (``trioproxy.config.sources`` reads the list); players ask for
``GET /sources/<name>.m3u8``. Only configured sources exist: the proxy never fetches a URL a
client supplies.
"""

from __future__ import annotations

import re
import uuid
from urllib.parse import urlsplit

from .engine import Engine, Session

__all__ = ["RENDITION_NAME", "SOURCE_PREFIX", "rendition_name", "source_engine", "source_session"]

SOURCE_PREFIX = "source/"
"""Channel names of sources are this prefix and the source's name."""

RENDITION_NAME = re.compile(r"([0-9a-f]{40}|source/[a-z0-9][a-z0-9_-]{0,63})\.r([0-9]{1,2})")
"""Channel names of renditions: the channel whose variant lists them, ``.r`` and a number."""


def rendition_name(parent: str, index: int) -> str:
    return f"{parent}.r{index}"


def source_engine(url: str) -> Engine:
    """The origin of a source, in the shape events describe an engine with."""
    parts = urlsplit(url)
    return Engine(base_url=f"{parts.scheme}://{parts.netloc}")


def source_session(url: str) -> Session:
    """A source needs no session opened: its playlist is the playback URL; nothing to stop."""
    session_id = str(uuid.uuid4())
    return Session(
        playback_url=url,
        stat_url="",
        command_url="",
        playback_session_id=session_id,
        is_live=1,
        pid=session_id,
    )
