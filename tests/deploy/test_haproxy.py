"""HAProxy from ``deploy/haproxy.cfg`` in front of three real proxies: every URL form of one
channel reaches one instance, channels spread over the instances, and when an instance stops,
the health check on ``/healthz`` takes it out and its channels (only those) move to live ones.

Real programs on 127.0.0.1 and the real clock; waits poll with a deadline.
"""

from __future__ import annotations

import hashlib
from urllib.parse import urljoin

import httpx
import trio

from trioproxy.testing.engine import DEMO_CONTENT_ID

from ..tools import require_tools
from .cluster import INSTANCES, Cluster, running_cluster, server_name

pytestmark = require_tools("haproxy")

INCARNATION = "0123456789abcdef0123456789abcdef"
TIMEOUT = httpx.Timeout(20.0)


def channel_id(n: int) -> str:
    return hashlib.sha1(f"channel {n}".encode()).hexdigest()


def forms(key: str) -> list[tuple[str, str]]:
    """Every URL that names AceStream content ``key`` (nothing is started: HEADs and media)."""
    return [
        ("HEAD", f"/ace/getstream?id={key}"),
        ("HEAD", f"/ace/getstream?id={key.upper()}"),
        ("HEAD", f"/ace/getstream?id={key}&format=ts"),
        ("HEAD", f"/ace/getstream?format=ts&keepalive=0&id={key}"),
        ("HEAD", f"/ace/getstream?infohash={key}"),
        ("HEAD", f"/ace/manifest.m3u8?id={key}"),
        ("HEAD", f"/ace/manifest.m3u8?infohash={key}&format=ts"),
        ("GET", f"/ace/hls/{key}/index.m3u8?client=abcdefgh"),
        ("GET", f"/ace/hls/{key}.r1/index.m3u8"),
        ("GET", f"/ace/hls/{key}/{INCARNATION}/17.ts"),
        ("GET", f"/ace/hls/{key}.r2/{INCARNATION}/3.m4s"),
        ("GET", f"/ace/hls/{key}/{INCARNATION}/r/0.mp4"),
    ]


def source_forms(name: str) -> list[tuple[str, str]]:
    return [
        ("GET", f"/sources/{name}.m3u8"),
        ("GET", f"/sources/{name}.m3u8?client=abcdefgh&format=ts"),
        ("GET", f"/sources/{name}.ts?keepalive=0"),
        ("GET", f"/sources/{name}.r1/index.m3u8"),
        ("GET", f"/sources/{name}/{INCARNATION}/5.ts"),
        ("GET", f"/sources/{name}/{INCARNATION}/r/1.key"),
    ]


async def where(cluster: Cluster, client: httpx.AsyncClient, urls: list[tuple[str, str]]) -> int:
    """The one instance that heard every one of ``urls``."""
    instances: set[int] = set()
    for method, url in urls:
        _, heard = await cluster.landed(client, method, url)
        assert len(heard) == 1, (url, heard)
        instances |= heard
    assert len(instances) == 1, (urls, instances)
    return instances.pop()


async def test_every_url_of_a_channel_reaches_one_instance_and_channels_spread() -> None:
    async with running_cluster() as cluster, httpx.AsyncClient(timeout=TIMEOUT) as client:
        placed = {
            key: await where(cluster, client, forms(key)) for key in map(channel_id, range(12))
        }
        sources = {
            name: await where(cluster, client, source_forms(name))
            for name in ("news", "sport-1", "films_hd", "music")
        }
        xtream = {
            n: await where(
                cluster,
                client,
                [
                    ("HEAD", f"/live/alice/secret/{n}.ts"),
                    ("GET", f"/live/bob/other/{n}.ts"),
                    ("GET", f"/live/alice/secret/{n}.m3u8"),
                ],
            )
            for n in range(1, 7)
        }
        # Other URLs: by their path, so the same path again reaches the same instance.
        for path in ("/playlist.m3u", "/lineup.json", "/epg.xml"):
            await where(cluster, client, [("GET", path), ("GET", path + "?key=x")])
    assert set(placed.values()) == set(range(INSTANCES)), placed
    assert len(set(sources.values()) | set(xtream.values())) > 1


async def test_a_channel_played_through_haproxy_stays_on_one_instance() -> None:
    infohash = channel_id(100)
    async with running_cluster() as cluster, httpx.AsyncClient(timeout=TIMEOUT) as client:
        for key, kind in ((DEMO_CONTENT_ID, "id"), (channel_id(101), "id"), (infohash, "infohash")):
            seen: set[int] = set()
            redirect, heard = await cluster.landed(client, "GET", f"/ace/getstream?{kind}={key}")
            seen |= heard
            assert redirect.status_code == 302
            playlist_url = urljoin(cluster.haproxy.url, redirect.headers["location"])
            assert f"/ace/hls/{key}/index.m3u8" in playlist_url
            playlist, heard = await cluster.landed(client, "GET", playlist_url)
            seen |= heard
            assert playlist.status_code == 200, playlist.text
            segments = [line for line in playlist.text.splitlines() if line and line[0] != "#"]
            assert segments
            for uri in segments[:2]:
                segment, heard = await cluster.landed(client, "GET", urljoin(playlist_url, uri))
                seen |= heard
                assert segment.status_code == 200
                assert segment.content[0] == 0x47  # MPEG-TS
            manifest, heard = await cluster.landed(
                client, "GET", f"/ace/manifest.m3u8?{kind}={key}"
            )
            seen |= heard
            assert manifest.status_code == 302
            ts, heard = await cluster.streamed(f"/ace/getstream?{kind}={key}&format=ts")
            seen |= heard
            head, _, body = ts.partition(b"\r\n\r\n")
            assert head.split(b" ")[1] == b"200", head
            assert body[:1] == b"\x47"
            assert len(seen) == 1, (key, seen)


async def test_a_stopped_instance_fails_its_health_check_and_only_its_channels_move() -> None:
    keys = [channel_id(n) for n in range(12)]
    async with running_cluster() as cluster, httpx.AsyncClient(timeout=TIMEOUT) as client:
        states = await cluster.haproxy.server_states(client)
        assert set(states.values()) == {"UP"}, states
        before = {key: await where(cluster, client, forms(key)[:3]) for key in keys}
        gone = before[keys[0]]
        cluster.stops[gone].set()
        with trio.fail_after(10):
            await cluster.haproxy.wait_until(client, server_name(gone), "DOWN")
        after = {}
        for key in keys:
            after[key] = await where(cluster, client, forms(key)[:3])
            response, _ = await cluster.landed(client, "HEAD", f"/ace/getstream?id={key}")
            assert response.status_code == 200
        health, _ = await cluster.landed(client, "GET", "/healthz")
        assert health.status_code == 200
    assert gone not in after.values()
    moved = {key for key in keys if after[key] != before[key]}
    assert moved == {key for key in keys if before[key] == gone}
