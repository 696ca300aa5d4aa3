"""A channel's shared resources (initialization sections and keys), each fetched once.

Segments name the resources they need by number; the proxy serves them under the channel's URL
space, so a player never reaches the upstream. Also: what kind of media a segment URL names.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

import trio

from ..errors import EngineError
from ..hls.playlist import Resource
from ..hls.window import MemoryAccount, OverBudget

__all__ = [
    "CONTENT_TYPES",
    "ResourceCache",
    "ResourceKind",
    "segment_extension",
]

ResourceKind = Literal["init", "key"]

CONTENT_TYPES: dict[str, str] = {
    "ts": "video/mp2t",
    "m4s": "video/mp4",
    "mp4": "video/mp4",
    "aac": "audio/aac",
    "ac3": "audio/ac3",
    "ec3": "audio/eac3",
    "mp3": "audio/mpeg",
    "vtt": "text/vtt",
    "key": "application/octet-stream",
}
"""Content type of each file name extension our URLs use."""

_EXTENSIONS = {
    "ts": "ts",
    "m2ts": "ts",
    "mts": "ts",
    "m4s": "m4s",
    "mp4": "m4s",
    "m4v": "m4s",
    "m4a": "m4s",
    "cmfv": "m4s",
    "cmfa": "m4s",
    "aac": "aac",
    "ac3": "ac3",
    "ec3": "ec3",
    "mp3": "mp3",
    "vtt": "vtt",
    "webvtt": "vtt",
}


def segment_extension(uri: str, has_init: bool) -> str:
    """The extension our URL for an upstream segment gets: it tells the content type."""
    name = urlsplit(uri).path.rsplit("/", 1)[-1]
    extension = _EXTENSIONS.get(name.rpartition(".")[2].lower()) if "." in name else None
    if extension is None:
        return "m4s" if has_init else "ts"
    if has_init and extension == "ts":
        return "m4s"  # an init section means fragmented MP4, whatever the name says
    return extension


class ResourceUnavailable(EngineError):
    """An init section or key could not be fetched."""


@dataclass(eq=False, slots=True)
class _Entry:
    number: int
    kind: ResourceKind
    source: Resource
    done: trio.Event = field(default_factory=trio.Event)
    data: bytes | None = None


class ResourceCache:
    """Numbered init sections and keys of one channel. At most ``limit`` are kept (keys may
    rotate with every segment); the oldest go first. With an ``account``, the bytes kept are
    charged to it, and one that does not fit is unavailable."""

    def __init__(self, limit: int, account: MemoryAccount | None = None) -> None:
        self.limit = max(1, limit)
        self.account = account
        self._by_source: dict[tuple[ResourceKind, Resource], _Entry] = {}
        self._by_number: dict[int, _Entry] = {}
        self._next = 0
        self.fetches = 0

    def __len__(self) -> int:
        return len(self._by_number)

    async def get(
        self,
        kind: ResourceKind,
        source: Resource,
        fetch: Callable[[Resource], Awaitable[bytes]],
    ) -> int:
        """The number of ``source``, fetched with ``fetch`` unless it is cached or on its way."""
        entry = self._by_source.get((kind, source))
        if entry is None:
            entry = _Entry(self._next, kind, source)
            self._next += 1
            self._by_source[(kind, source)] = entry
            self._by_number[entry.number] = entry
            try:
                self.fetches += 1
                data = await fetch(source)
                if self.account is not None:
                    self.account.add(len(data))
                entry.data = data
            except OverBudget:
                raise ResourceUnavailable(
                    f"{kind} {source.uri} does not fit in TRIOPROXY_MEMORY_BUDGET"
                ) from None
            finally:
                if entry.data is None:  # failed or cancelled: a later segment tries again
                    self._forget(entry)
                entry.done.set()
            self._evict()
        else:
            await entry.done.wait()
        if entry.data is None:
            raise ResourceUnavailable(f"{kind} {source.uri} could not be fetched")
        return entry.number

    def lookup(self, number: int) -> tuple[ResourceKind, bytes] | None:
        entry = self._by_number.get(number)
        if entry is None or entry.data is None:
            return None
        return entry.kind, entry.data

    def filename(self, number: int) -> str:
        entry = self._by_number.get(number)
        return f"{number}.key" if entry is not None and entry.kind == "key" else f"{number}.mp4"

    def _forget(self, entry: _Entry) -> None:
        if self._by_source.get((entry.kind, entry.source)) is entry:
            del self._by_source[(entry.kind, entry.source)]
        forgotten = self._by_number.pop(entry.number, None) is not None
        if forgotten and entry.data is not None and self.account is not None:
            self.account.remove(len(entry.data))

    def _evict(self) -> None:
        while len(self._by_number) > self.limit:
            oldest = next(iter(self._by_number.values()))
            if not oldest.done.is_set():
                break
            self._forget(oldest)
