"""A guide of ~50 MB, gzip, as big national guides are: read as it arrives, in a small fraction of
its size. The document is generated and compressed piece by piece: the test never holds it."""

from __future__ import annotations

import tracemalloc
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import trio

from trioproxy.channels.guide import GuideKeeper

from .epg import GOOD, EpgServer, epg_config, guide_chunks, listed

DOCUMENT_BYTES = 50_000_000


async def test_a_50_mb_guide_is_read_in_a_small_fraction_of_its_size(tmp_path: Path) -> None:
    sizes: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        packer = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        for text in guide_chunks(GOOD, others=1000, per_other=128):
            data = text.encode()
            sizes.append(len(data))
            yield packer.compress(data)
            await trio.lowlevel.checkpoint()
        yield packer.flush()

    server = EpgServer()
    server.serve(body)
    config = epg_config(tmp_path, epg_timeout=600.0)
    tracemalloc.start()
    try:
        async with httpx.AsyncClient(transport=server.transport()) as http:
            keeper = GuideKeeper(config, http)
            async with trio.open_nursery() as nursery:
                refresher: trio.CancelScope = await nursery.start(keeper.run)
                while True:
                    snapshot = keeper.snapshot()
                    assert snapshot is not None
                    if snapshot["sources"][0]["cached"] or snapshot["sources"][0]["error"]:
                        break
                    await trio.sleep(0.05)
                refresher.cancel()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert snapshot["sources"][0]["error"] is None
    assert sum(sizes) > DOCUMENT_BYTES
    assert keeper.guide is not None
    assert listed(keeper.guide.document)["channels"] == ["bbc1.uk", "Local.News"]
    assert snapshot["programmes"] == 5
    # Everything the fetch, the filter, the guide built and the cache file written held at once.
    print(f"document {sum(sizes)} bytes, tracemalloc peak {peak} bytes")
    assert peak < sum(sizes) / 25, peak
