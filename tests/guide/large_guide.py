"""Read a ~50 MB gzip guide through the guide keeper and report what it cost, as JSON on stdout.

Run in a process of its own (``python -m tests.guide.large_guide STATE_DIR``) by
``test_large.py``: the peak that ``tracemalloc`` reports then counts this guide alone, not what
threads other tests left running still allocate.
"""

from __future__ import annotations

import json
import sys
import tracemalloc
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import trio

from trioproxy.channels.guide import GuideKeeper

from .epg import GOOD, EpgServer, epg_config, guide_chunks, listed


async def measure(state_dir: Path) -> dict[str, Any]:
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
    config = epg_config(state_dir, epg_timeout=600.0)
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
    guide = keeper.guide
    return {
        "document_bytes": sum(sizes),
        "peak_bytes": peak,
        "error": snapshot["sources"][0]["error"],
        "programmes": snapshot["programmes"],
        "channels": None if guide is None else listed(guide.document)["channels"],
    }


if __name__ == "__main__":
    print(json.dumps(trio.run(measure, Path(sys.argv[1]))))
