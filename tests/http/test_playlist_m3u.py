"""``GET /playlist.m3u`` through the proxy in memory: every URL it lists is requested and plays;
its URLs follow the host the client used, and forwarded headers only from a trusted proxy."""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import trio
import trio.testing

from trioproxy.config import Config
from trioproxy.config.channels import parse_channels_file
from trioproxy.testing.harness import ORIGIN_URL, PROXY_URL, harness

from ..origin import Origin, origin_config
from ..ts_client import TsClient
from .iptv import Listing, read_m3u

ID = "0123456789abcdef0123456789abcdef01234567"
HASH = "89abcdef0123456789abcdef0123456789abcdef"
CHANNELS = f"""\
# name,stream,tvg-id,logo,group
BBC One,{ID},bbc1.uk,https://logos.example/bbc1.png,UK
"News, Weather",infohash:{HASH},,,News
Local news,source:news,local.news,,Local
"Evil"" tvg-logo=""http://evil.example/x.png",{ID},"a"" b",https://logos.example/a%22b"c,"G"
"""
EPG = "https://epg.example/guide.xml"


def config(**changes: Any) -> Config:
    return origin_config(
        channels_file=parse_channels_file(CHANNELS),
        sources=(("news", ORIGIN_URL + "/feeds/news/index.m3u8"),),
        epg_url=EPG,
        **changes,
    )


async def fetch_m3u(client: httpx.AsyncClient, url: str = "/playlist.m3u", **kw: Any) -> Listing:
    response = await client.get(url, **kw)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/x-mpegurl; charset=utf-8"
    assert response.headers["access-control-allow-origin"] == "*"
    return read_m3u(response.content.decode("utf-8"))


async def plays(client: httpx.AsyncClient, url: str) -> None:
    """``url`` answers (after a redirect) an HLS playlist whose newest segment can be fetched."""
    response = await client.get(url)
    if response.status_code == 302:
        response = await client.get(response.headers["location"])
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vnd.apple.mpegurl"
    lines = response.text.splitlines()
    assert lines[0] == "#EXTM3U"
    segment = await client.get(lines[-1])
    assert segment.status_code == 200
    assert segment.content


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


async def test_every_url_in_the_playlist_plays(autojump_clock: trio.testing.MockClock) -> None:
    async with harness(config(), origin=Origin()) as h:
        listing = await fetch_m3u(h.client)
        assert listing.attributes == {"url-tvg": EPG, "x-tvg-url": EPG}
        assert [(e.duration, e.name) for e in listing.entries] == [
            (-1, "BBC One"),
            (-1, "News, Weather"),
            (-1, "Local news"),
            (-1, "Evil' tvg-logo='http://evil.example/x.png"),
        ]
        assert [e.attributes for e in listing.entries] == [
            {
                "tvg-id": "bbc1.uk",
                "tvg-logo": "https://logos.example/bbc1.png",
                "group-title": "UK",
            },
            {"tvg-id": "", "tvg-logo": "", "group-title": "News"},
            {"tvg-id": "local.news", "tvg-logo": "", "group-title": "Local"},
            {"tvg-id": "a' b", "tvg-logo": "https://logos.example/a%22b%22c", "group-title": "G"},
        ]
        assert [e.url for e in listing.entries] == [
            f"{PROXY_URL}/ace/manifest.m3u8?id={ID}",
            f"{PROXY_URL}/ace/manifest.m3u8?infohash={HASH}",
            f"{PROXY_URL}/sources/news.m3u8",
            f"{PROXY_URL}/ace/manifest.m3u8?id={ID}",
        ]
        for entry in listing.entries:
            await plays(h.client, entry.url)
        assert sorted(c.name for c in h.registry.channels) == sorted([ID, HASH, "source/news"])


async def test_ts_links_are_ts_streams_of_the_same_ids(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness(config(), origin=Origin()) as h:
        listing = await fetch_m3u(h.client, params={"format": "ts"})
        urls = [urlsplit(e.url) for e in listing.entries]
        assert [(u.scheme, u.netloc, u.path) for u in urls] == [
            ("http", "proxy.test", "/ace/getstream"),
            ("http", "proxy.test", "/ace/getstream"),
            ("http", "proxy.test", "/sources/news.ts"),
            ("http", "proxy.test", "/ace/getstream"),
        ]
        assert [query(e.url) for e in listing.entries] == [
            {"id": [ID], "format": ["ts"]},
            {"infohash": [HASH], "format": ["ts"]},
            {},
            {"id": [ID], "format": ["ts"]},
        ]
        assert h.registry.channels == []  # the list itself starts nothing
        # Every link answers one continuous MPEG-TS stream of its channel.
        app = h.app
        players = [TsClient(app, u.path, u.query) for u in urls]
        async with trio.open_nursery() as nursery:
            for player in players:
                nursery.start_soon(player.run)
            await trio.sleep(5.0)
            for player in players:
                assert player.status == 200, (player.path, player.query)
                assert player.headers[b"content-type"] == b"video/mp2t"
                assert player.body, (player.path, player.query)  # its first bytes, at once
                player.leave()
        assert {c.name for c in h.registry.channels} == {ID, HASH, "source/news"}


async def test_stream_mode_is_the_default_format() -> None:
    async with harness(config(stream_mode="TS"), origin=Origin()) as h:
        listing = await fetch_m3u(h.client)
        assert query(listing.entries[0].url) == {"id": [ID], "format": ["ts"]}
        listing = await fetch_m3u(h.client, params={"format": "HLS"})
        assert listing.entries[0].url == f"{PROXY_URL}/ace/manifest.m3u8?id={ID}"
        response = await h.client.get("/playlist.m3u", params={"format": "dash"})
        assert response.status_code == 400
        assert response.json() == {"error": "bad_request", "message": "format= must be hls or ts"}


async def test_urls_follow_the_host_the_client_used() -> None:
    async with harness(config(), origin=Origin()) as h:
        listing = await fetch_m3u(h.client, headers={"Host": "192.168.1.20:8000"})
        assert listing.entries[0].url == f"http://192.168.1.20:8000/ace/manifest.m3u8?id={ID}"
        response = await h.client.get("/playlist.m3u", headers={"Host": 'evil"host'})
        assert response.status_code == 400


FORWARDED = {
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "tv.example.org",
    "X-Forwarded-Prefix": "/iptv",
}


async def test_forwarded_headers_from_an_untrusted_peer_are_ignored() -> None:
    # The harness's client connects from 127.0.0.1.
    others = (ipaddress.ip_network("10.0.0.0/8"),)
    async with harness(config(trusted_proxies=others), origin=Origin()) as h:
        listing = await fetch_m3u(h.client, headers=FORWARDED)
        assert {urlsplit(e.url).netloc for e in listing.entries} == {"proxy.test"}
        assert listing.entries[2].url == f"{PROXY_URL}/sources/news.m3u8"


async def test_forwarded_headers_from_a_trusted_proxy_are_believed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    local = (ipaddress.ip_network("127.0.0.1/32"),)
    async with harness(config(trusted_proxies=local), origin=Origin()) as h:
        listing = await fetch_m3u(h.client, headers=FORWARDED)
        base = "https://tv.example.org/iptv"
        assert [e.url for e in listing.entries[:3]] == [
            f"{base}/ace/manifest.m3u8?id={ID}",
            f"{base}/ace/manifest.m3u8?infohash={HASH}",
            f"{base}/sources/news.m3u8",
        ]
        # What the proxy in front does: strip its prefix and pass the request on.
        for entry in listing.entries:
            await plays(h.client, entry.url.removeprefix(base))


async def test_head_answers_headers_only_and_starts_nothing() -> None:
    async with harness(config(), origin=Origin()) as h:
        got = await h.client.get("/playlist.m3u")
        head = await h.client.head("/playlist.m3u")
        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["content-type"] == got.headers["content-type"]
        assert head.headers["content-length"] == got.headers["content-length"]
        assert h.registry.channels == []


async def test_without_a_channel_list_the_playlist_is_not_found() -> None:
    async with harness(origin_config(), origin=Origin()) as h:
        for method in ("GET", "HEAD"):
            response = await h.client.request(method, "/playlist.m3u")
            assert response.status_code == 404
            assert response.headers["content-type"] == "application/json"
        response = await h.client.get("/playlist.m3u")
        assert response.json() == {
            "error": "not_found",
            "message": "no channel list: set TRIOPROXY_CHANNELS_FILE",
        }
