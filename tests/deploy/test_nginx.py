"""nginx from ``deploy/nginx/trioproxy.conf.template`` in front of HAProxy and three proxies:
many players asking for one segment at once reach the proxy once (``proxy_cache_lock``);
playlists and MPEG-TS streams reach it every time.

Real programs on 127.0.0.1 and the real clock.
"""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

import httpx
import trio

from trioproxy.testing.balancers import running_nginx
from trioproxy.testing.engine import DEMO_CONTENT_ID

from ..tools import require_tools
from .cluster import first_bytes, running_cluster

pytestmark = require_tools("haproxy", "nginx")

PLAYERS = 24


async def test_nginx_asks_for_a_segment_once_and_for_playlists_every_time() -> None:
    async with (
        running_cluster() as cluster,
        running_nginx(cluster.haproxy.url.removeprefix("http://")) as nginx,
        httpx.AsyncClient(timeout=httpx.Timeout(20.0)) as client,
    ):
        redirect = await client.get(f"{nginx}/ace/getstream?id={DEMO_CONTENT_ID}")
        assert redirect.status_code == 302
        playlist_url = urljoin(nginx, redirect.headers["location"])
        playlist = await client.get(playlist_url)
        assert playlist.status_code == 200, playlist.text
        uris = [line for line in playlist.text.splitlines() if line and line[0] != "#"]
        segment_url = urljoin(playlist_url, uris[-1])
        segment_path = urlsplit(segment_url).path

        answers: list[httpx.Response] = []

        async def play() -> None:
            answers.append(await client.get(segment_url))

        async with trio.open_nursery() as nursery:
            for _ in range(PLAYERS):
                nursery.start_soon(play)
        assert [a.status_code for a in answers] == [200] * PLAYERS
        assert len({a.content for a in answers}) == 1
        assert cluster.count(segment_path) == 1
        assert {a.headers["x-cache-status"] for a in answers} <= {"MISS", "HIT", "UPDATING"}
        again = await client.get(segment_url + "?key=another")
        assert again.headers["x-cache-status"] == "HIT"
        assert cluster.count(segment_path) == 1

        playlist_path = urlsplit(playlist_url).path
        before = cluster.count(playlist_path)
        for _ in range(3):
            assert (await client.get(playlist_url)).status_code == 200
        assert cluster.count(playlist_path) == before + 3

        # A segment the proxy does not have (404, no-store) is not kept either.
        missing = segment_url.rsplit("/", 1)[0] + "/999999.ts"
        for _ in range(2):
            assert (await client.get(missing)).status_code == 404
        assert cluster.count(urlsplit(missing).path) == 2

        # MPEG-TS goes through unbuffered: its first packets arrive while the stream goes on.
        start = await first_bytes(f"{nginx}/ace/getstream?id={DEMO_CONTENT_ID}&format=ts")
        head, _, body = start.partition(b"\r\n\r\n")
        assert head.split(b" ")[1] == b"200", head
        assert body[:1] == b"\x47"
