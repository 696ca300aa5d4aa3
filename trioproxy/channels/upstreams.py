"""What a channel follows: the kinds of upstream, and what the channel needs of one.

The registry picks the upstream and hands it to the channel; the channel's upstream session
opens it, fetches from it, and stops it:

- :class:`EngineUpstream`: a content id or infohash on one engine. Opening asks the engine for a
  session (one MPEG-TS stream, or its HLS playlist: ``TRIOPROXY_UPSTREAM_MODE``); stopping
  sends it ``method=stop``; the engine carries it as load.
- :class:`~trioproxy.upstream.sources.SourceUpstream`: a configured source or a rendition, by
  URL. No session to open or stop, no engine capacity taken.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..upstream.engine import Engine, EngineClient, KeyType, Session, StreamKind

__all__ = ["EngineUpstream", "Upstream"]


class Upstream(Protocol):
    """Where a channel's stream comes from."""

    @property
    def key_type(self) -> KeyType: ...

    @property
    def key(self) -> str: ...

    @property
    def engine(self) -> Engine:
        """The engine (or origin) as events and the status page describe it."""
        ...

    @property
    def engine_load(self) -> Engine | None:
        """The engine whose capacity this upstream takes, if any."""
        ...

    async def open(self, client: EngineClient) -> Session:
        """Open a session; failures raise :class:`~trioproxy.errors.EngineError`."""
        ...

    async def stop(self, client: EngineClient, session: Session) -> None:
        """Stop a session :meth:`open` returned; failures raise ``EngineError``."""
        ...


@dataclass(frozen=True, slots=True)
class EngineUpstream:
    """An AceStream stream on one engine."""

    engine: Engine
    key_type: KeyType
    key: str
    kind: StreamKind = "hls"
    """What sessions are opened as: MPEG-TS (``/ace/getstream``) or HLS."""

    @property
    def engine_load(self) -> Engine:
        return self.engine

    async def open(self, client: EngineClient) -> Session:
        return await client.open_session(self.engine, self.key_type, self.key, self.kind)

    async def stop(self, client: EngineClient, session: Session) -> None:
        await client.stop_session(session)
