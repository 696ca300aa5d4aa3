"""Named generic HLS sources and renditions as a kind of upstream: an origin with no session.

Sources are configured (``trioproxy.config.sources`` reads the list); players ask for
``GET /sources/<name>.m3u8``. Only configured sources exist: the proxy never fetches a URL a
client supplies. A rendition (an alternative audio or subtitle playlist a variant lists) is
followed the same way. :class:`SourceUpstream` is what a channel of either follows: there is no
session to open or stop, and no engine's capacity is taken.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from ..errors import public_url
from .engine import Engine, EngineClient, KeyType, Session

__all__ = ["RENDITION_NAME", "SOURCE_PREFIX", "SourceUpstream", "rendition_name"]

SOURCE_PREFIX = "source/"
"""Channel names of sources are this prefix and the source's name."""

RENDITION_NAME = re.compile(r"([0-9a-f]{40}|source/[a-z0-9][a-z0-9_-]{0,63})\.r([0-9]{1,2})")
"""Channel names of renditions: the channel whose variant lists them, ``.r`` and a number."""


def rendition_name(parent: str, index: int) -> str:
    return f"{parent}.r{index}"


@dataclass(frozen=True, slots=True)
class SourceUpstream:
    """An HLS origin followed by URL: its playlist is the playback URL; nothing to stop."""

    url: str

    @property
    def key_type(self) -> KeyType:
        return "url"

    @property
    def key(self) -> str:
        return self.url

    @property
    def engine(self) -> Engine:
        """The origin, in the shape events describe an engine with: its scheme, host and port,
        never the credentials a URL may carry (they would show wherever an engine is named)."""
        return Engine(base_url=public_url(self.url))

    @property
    def engine_load(self) -> None:
        """A source is no engine stream: it takes no engine's capacity."""
        return None

    async def open(self, client: EngineClient) -> Session:
        session_id = str(uuid.uuid4())
        return Session(
            playback_url=self.url,
            stat_url="",
            command_url="",
            playback_session_id=session_id,
            is_live=1,
            pid=session_id,
        )

    async def stop(self, client: EngineClient, session: Session) -> None:
        return None
