"""What a channel follows: the kinds of upstream, and what the channel needs of one.

The registry picks the upstream and hands it to the channel; the channel's upstream session
opens it, fetches from it, and stops it:

- :class:`EngineUpstream`: a content id or infohash on one engine. Opening asks the engine for a
  session (one MPEG-TS stream, or its HLS playlist: ``TRIOPROXY_UPSTREAM_MODE``); stopping
  sends it ``method=stop``; the engine carries it as load.
- :class:`~trioproxy.upstream.sources.SourceUpstream`: a configured source or a rendition, by
  URL. No session to open or stop, no engine capacity taken.
- :class:`RelayUpstream` (many instances, ``channels/ownership.py``): the MPEG-TS output of the
  instance that owns the channel in the cluster, read as one player there. No engine session
  here, no events.
- :class:`PendingUpstream` (many instances): not decided yet; the channel's next session
  asks the cluster whether it owns the channel (an engine session) or relays it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlencode

from ..cluster import Instance
from ..upstream.engine import Engine, EngineClient, KeyType, Session, StreamKind

__all__ = ["RELAY_RULE", "EngineUpstream", "PendingUpstream", "RelayUpstream", "Upstream"]

RELAY_RULE = "/cluster/relay/<key_type:key_type>/<channel:key>.ts"
"""Where an owner serves a channel's MPEG-TS to the other instances: the rule of
``http/urls.py`` ``RELAY``, declared here, where relays build it."""


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


@dataclass(frozen=True, slots=True)
class RelayUpstream:
    """The owner's own MPEG-TS output of AceStream content ``key``: one connection, one player
    there (``credential`` tells the owner it is an instance of the cluster, ``player_key``
    passes its player keys)."""

    owner: Instance
    key_type: KeyType
    key: str
    credential: str
    player_key: str | None = None

    @property
    def engine(self) -> Engine:
        return Engine(self.owner.url)

    @property
    def engine_load(self) -> None:
        return None

    @property
    def url(self) -> str:
        query = {"relay": self.credential}
        if self.player_key:
            query["key"] = self.player_key
        path = RELAY_RULE.replace("<key_type:key_type>", self.key_type)
        path = path.replace("<channel:key>", self.key)
        return f"{self.owner.url.rstrip('/')}{path}?{urlencode(query)}"

    async def open(self, client: EngineClient) -> Session:
        # Nothing to ask for: the owner's stream is read at once (segmenting.py).
        return Session(
            playback_url=self.url,
            stat_url="",
            command_url="",
            playback_session_id=f"relay of {self.owner.id}",
            is_live=1,
            pid="",
            kind="ts",
        )

    async def stop(self, client: EngineClient, session: Session) -> None:
        """Nothing to stop: the connection closes with the session."""


@dataclass(frozen=True, slots=True)
class PendingUpstream:
    """AceStream content whose next session the cluster decides (``ownership.py``)."""

    key_type: KeyType
    key: str
    kind: StreamKind = "hls"

    @property
    def engine(self) -> Engine:
        return Engine("cluster:")

    @property
    def engine_load(self) -> None:
        return None

    async def open(self, client: EngineClient) -> Session:
        raise AssertionError("a pending upstream is decided before its session opens")

    async def stop(self, client: EngineClient, session: Session) -> None:
        raise AssertionError("a pending upstream has no session")
