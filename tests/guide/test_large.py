"""A guide of ~50 MB, gzip, as big national guides are: read as it arrives, in a small fraction of
its size. The document is generated and compressed piece by piece: the test never holds it; the
reading runs in a process of its own, so its memory peak is the guide's alone
(:mod:`tests.guide.large_guide`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import trio

DOCUMENT_BYTES = 50_000_000


async def test_a_50_mb_guide_is_read_in_a_small_fraction_of_its_size(tmp_path: Path) -> None:
    done = await trio.run_process(
        [sys.executable, "-m", "tests.guide.large_guide", str(tmp_path)],
        capture_stdout=True,
        cwd=Path(__file__).parent.parent.parent,
    )
    result = json.loads(done.stdout)
    assert result["error"] is None
    assert result["document_bytes"] > DOCUMENT_BYTES
    assert result["channels"] == ["bbc1.uk", "Local.News"]
    assert result["programmes"] == 5
    # Everything the fetch, the filter, the guide built and the cache file written held at once.
    print(f"document {result['document_bytes']} bytes, tracemalloc peak {result['peak_bytes']}")
    assert result["peak_bytes"] < result["document_bytes"] / 25, result
