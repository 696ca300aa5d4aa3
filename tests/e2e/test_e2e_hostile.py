"""A hostile origin on real sockets, the real HTTP client in front of it: each attack ends its
channel with its reason, within the bounds, and the bodies left early leave no async generator
behind (a ResourceWarning is an error here), while a good source plays on."""

from __future__ import annotations

import gc

import httpx
import pytest
import trio

from trioproxy.config import Config
from trioproxy.testing.hostile import HostileOrigin

from ..media import proxy_server, serve_asgi

CASES = {
    "endless": "/endless.m3u8",
    "bomb": "/bomb.m3u8",
    "endlessseg": "/endless-segment.m3u8",
    "gzipseg": "/gzip-segments.m3u8",
    "good": "/good.m3u8",
}


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("endless", "playlist is larger than 262144 bytes"),
        ("bomb", "playlist decodes to larger than 262144 bytes"),
        ("endlessseg", "segment is larger than 1048576 bytes"),
        ("gzipseg", "segment arrived content-encoded (gzip)"),
    ],
)
async def test_a_hostile_source_on_real_sockets(case: str, reason: str) -> None:
    origin = HostileOrigin()
    async with serve_asgi(origin) as origin_url:
        config = Config(
            bind="127.0.0.1:0",
            engines=("http://127.0.0.1:9",),
            sources=tuple((name, origin_url + path) for name, path in CASES.items()),
            max_playlist_bytes=256 << 10,
            max_segment_bytes=1 << 20,
            upstream_timeout=2.0,
            failure_backoff=60.0,
        )
        async with proxy_server(config) as proxy, httpx.AsyncClient(base_url=proxy.url) as client:
            with trio.fail_after(30):
                good = await client.get("/sources/good.m3u8", follow_redirects=True)
                assert good.status_code == 200
                response = await client.get(f"/sources/{case}.m3u8", follow_redirects=True)
            assert response.status_code == 502, response.text
            assert reason in response.json()["message"]
            channel = proxy.registry.get("source/good")
            assert channel is not None
            assert channel.failure is None
            again = await client.get("/sources/good.m3u8?client=x")
            assert again.status_code == 200
            gc.collect()
    sent = sum(n for path, n in origin.sent.items() if not path.startswith("/good"))
    requests = sum(1 for path in origin.requests if not path.startswith("/good"))
    # What the origin got out stays near the bounds it was read to (plus socket buffers).
    assert sent <= requests * ((1 << 20) + (16 << 20))
