"""What one upstream segment becomes: its bytes, and the init section and keys it needs,
fetched through the channel's :class:`~trioproxy.resources.ResourceCache` (once per channel).

Segments pass through untouched: an encrypted segment stays encrypted, and its key is served
by the proxy under a URL of its own. A segment answered with no bytes at all (``200`` and an
empty body) is a failed download, not a segment: the fetch loop retries it, then marks a gap.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ..errors import EngineError
from ..hls.playlist import Key, Resource, UpstreamSegment
from ..hls.window import KeyTag, SegmentMeta
from .engine import EngineClient, MediaKind, shown
from .resources import ResourceCache, segment_extension

__all__ = ["fetch_resource", "fetch_segment", "segment_meta"]

_Fetch = Callable[[Resource], Awaitable[bytes]]


async def fetch_resource(
    engines: EngineClient, resource: Resource, kind: MediaKind = "segment"
) -> bytes:
    """The bytes of ``resource``; a byte range is fetched with an HTTP ``Range`` request.
    ``kind`` says which read bound applies."""
    if resource.byterange is None:
        return await engines.get_bytes(resource.uri, kind=kind)
    byte_range = (resource.byterange.offset, resource.byterange.length)
    return await engines.get_bytes(resource.uri, byte_range, kind=kind)


async def segment_meta(
    engines: EngineClient, resources: ResourceCache, segment: UpstreamSegment
) -> SegmentMeta:
    """The metadata of ``segment``, with its init section and keys fetched (or cached)."""

    async def fetch_init(resource: Resource) -> bytes:
        return await fetch_resource(engines, resource, "init")

    async def fetch_key(resource: Resource) -> bytes:
        return await fetch_resource(engines, resource, "key")

    init = None
    if segment.init is not None:
        init = await resources.get("init", segment.init, fetch_init)
    keys = []
    for key in segment.keys:
        keys.append(await _key_tag(key, resources, fetch_key))
    return SegmentMeta(
        extension=segment_extension(segment.uri, segment.init is not None),
        init=init,
        keys=tuple(keys),
        program_date_time=segment.program_date_time,
        date_time_listed=segment.date_time_listed,
    )


async def _key_tag(key: Key, resources: ResourceCache, fetch: _Fetch) -> KeyTag:
    keyformat = None if key.keyformat == "identity" else key.keyformat
    if key.fetchable and key.uri is not None:
        number = await resources.get("key", Resource(key.uri), fetch)
        return KeyTag(key.method, number, None, key.iv, keyformat, key.keyformatversions)
    # A DRM key system (skd://, data: ...): the player talks to it; we list it as it is.
    return KeyTag(key.method, None, key.uri, key.iv, keyformat, key.keyformatversions)


async def fetch_segment(
    engines: EngineClient, resources: ResourceCache, segment: UpstreamSegment
) -> tuple[bytes, SegmentMeta]:
    """The bytes of ``segment`` and its metadata; ``EngineError`` when it has no bytes."""
    meta = await segment_meta(engines, resources, segment)
    data = await fetch_resource(engines, segment.resource)
    if not data:
        raise EngineError(f"{shown(segment.uri)}: empty segment (no bytes in the answer)")
    return data, meta
