"""Player keys (``TRIOPROXY_PLAYER_KEYS``): every stream URL needs ``?key=``; a refused request
opens no engine session; the URLs a keyed player is handed carry its key on; media URLs carry
none and stay unguessable (the incarnation is 128 random bits, never shown without a key)."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import trio
import trio.lowlevel
import trio.testing

from trioproxy.config import ConfigError, load_config
from trioproxy.demo import play_url
from trioproxy.hls.mpegts import NULL_PACKET, PACKET_SIZE
from trioproxy.http import urls
from trioproxy.http.guards import log_access
from trioproxy.http.keys import KEYED_PATHS, OPEN_PATHS, PlayerKeys
from trioproxy.testing.engine import SimulatedEngine, demo_media
from trioproxy.testing.harness import CONTENT_A, PROXY_URL, default_config, harness

from ..origin import Origin
from ..ts_client import TsClient
from .test_playlist_m3u import config as m3u_config
from .test_playlist_m3u import fetch_m3u, plays
from .test_urls import sample

KEY = "alice-0123456789abcdef"
OTHER = "bob-fedcba9876543210xyz"
MEDIA = (urls.SEGMENT, urls.RESOURCE, urls.SOURCE_SEGMENT, urls.SOURCE_RESOURCE)


def keyed(**changes: Any) -> Any:
    return default_config(player_keys=(KEY, OTHER), **changes)


def refused_for_want_of_a_key(response: httpx.Response) -> bool:
    return (
        response.status_code == 401
        and response.headers["content-type"] == "application/json"
        and response.json()["error"] == "unauthorized"
        and "?key=" in response.json()["message"]
    )


STREAM_URLS = [
    f"/ace/getstream?id={CONTENT_A}",
    f"/ace/getstream?id={CONTENT_A}&format=ts",
    f"/ace/manifest.m3u8?id={CONTENT_A}",
    f"/ace/manifest.m3u8?infohash={CONTENT_A}",
    f"/ace/hls/{CONTENT_A}/index.m3u8",
    f"/ace/hls/{CONTENT_A}.r1/index.m3u8",
]


@pytest.mark.parametrize("url", STREAM_URLS)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("key", [None, "", "wrong-key-0123456789", KEY[:-1], KEY + "x"])
async def test_a_stream_url_without_a_valid_key_opens_nothing(
    url: str, method: str, key: str | None
) -> None:
    async with harness(keyed()) as h:
        suffix = "" if key is None else f"{'&' if '?' in url else '?'}key={key}"
        response = await h.client.request(method, url + suffix)
        assert response.status_code == 401
        assert response.headers["cache-control"] == "no-store"
        if method == "GET":
            assert refused_for_want_of_a_key(response)
            assert KEY not in response.text
            assert OTHER not in response.text
        await trio.lowlevel.checkpoint()
        assert h.sim.sessions == {}
        assert h.registry.channels == []


@pytest.mark.parametrize("path", urls.PATHS, ids=lambda path: path.rule)
async def test_every_path_but_the_open_ones_and_media_needs_a_key(path: urls.Path) -> None:
    """A stream path added to the URL scheme (``format=ts`` routes, say) is keyed unasked."""
    method = path.methods[0]
    async with harness(keyed()) as h:
        response = await h.client.request(method, sample(path))
        if path in OPEN_PATHS or path in MEDIA:
            assert response.status_code != 401, response.text
        else:
            assert path in KEYED_PATHS
            assert refused_for_want_of_a_key(response), response.text
        assert h.sim.sessions == {}


async def test_a_keyed_player_plays_and_its_key_follows_the_redirect(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness(keyed()) as h:
        response = await h.client.get("/ace/getstream", params={"id": CONTENT_A, "key": OTHER})
        assert response.status_code == 302
        location = response.headers["location"]
        assert parse_qs(urlsplit(location).query)["key"] == [OTHER]
        playlist = await h.client.get(location)
        assert playlist.status_code == 200, playlist.text
        segments = [line for line in playlist.text.splitlines() if not line.startswith("#")]
        assert segments
        for segment_url in segments:
            # No per-player key in media URLs (a shared cache may keep them) ...
            assert "key=" not in segment_url
            segment = await h.client.get(segment_url)
            assert segment.status_code == 200
            assert segment.headers["cache-control"].startswith("public")
        # ... and the reload keeps working with the URL as given.
        assert (await h.client.get(location)).status_code == 200
        assert len(h.sim.sessions) == 1
        # The same URL without its key: refused, however the player came by it.
        bare = location.replace(f"&key={OTHER}", "")
        assert refused_for_want_of_a_key(await h.client.get(bare))


async def test_a_keyed_ts_player_gets_the_stream_and_an_unkeyed_one_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    engine = SimulatedEngine(demo_media(), durations=[2.0], backlog=6.0)
    async with harness(keyed(), engine) as h, trio.open_nursery() as nursery:
        app = h.app
        unkeyed = TsClient(app, "/ace/getstream", f"id={CONTENT_A}&format=ts")
        await unkeyed.run()
        assert unkeyed.status == 401
        assert h.sim.sessions == {}
        player = TsClient(app, "/ace/getstream", f"id={CONTENT_A}&format=ts&key={KEY}")
        nursery.start_soon(player.run)
        await trio.sleep(10.0)
        assert player.status == 200
        assert player.headers[b"content-type"] == b"video/mp2t"
        packets = [data for _, data in player.chunks if data != NULL_PACKET]
        assert packets
        assert all(len(data) % PACKET_SIZE == 0 and data[0] == 0x47 for data in packets)
        assert len(h.sim.sessions) == 1
        player.leave()


async def test_the_url_the_demo_prints_plays_on_a_keyed_proxy() -> None:
    assert "key=" not in play_url(PROXY_URL, default_config())
    async with harness(keyed(), SimulatedEngine(demo_media(), durations=[2.0])) as h:
        url = play_url(PROXY_URL, h.config)
        assert parse_qs(urlsplit(url).query)["key"] == [KEY]
        response = await h.client.get(url)
        assert response.status_code == 302, response.text


async def test_media_urls_name_128_random_bits_kept_from_unkeyed_status(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness(keyed()) as h:
        location = await h.client.get("/ace/getstream", params={"id": CONTENT_A, "key": KEY})
        playlist = await h.client.get(location.headers["location"])
        channel = h.channel()
        assert re.fullmatch(r"[0-9a-f]{32}", channel.incarnation)
        assert f"/{channel.incarnation}/" in playlist.text
        status = await h.client.get("/proxy/status")
        assert status.status_code == 200
        assert CONTENT_A in status.text
        assert channel.incarnation not in status.text
        # A guessed incarnation serves nothing.
        newest = playlist.text.splitlines()[-1]
        guessed = newest.replace(channel.incarnation, "0" * 32)
        assert (await h.client.get(guessed)).status_code == 404


async def test_without_keys_everything_stays_open(autojump_clock: trio.testing.MockClock) -> None:
    async with harness() as h:
        assert (await h.open_playlist()).status_code == 200
        status = (await h.client.get("/proxy/status")).json()
        assert status["channels"][0]["incarnation"] == h.channel().incarnation


async def test_sources_need_a_key_and_carry_it_on(autojump_clock: trio.testing.MockClock) -> None:
    async with harness(m3u_config(player_keys=(KEY,)), origin=Origin()) as h:
        assert refused_for_want_of_a_key(await h.client.get("/sources/news.m3u8"))
        assert h.registry.channels == []
        response = await h.client.get("/sources/news.m3u8", params={"key": KEY})
        assert response.status_code == 302
        assert parse_qs(urlsplit(response.headers["location"]).query)["key"] == [KEY]
        await plays(h.client, response.headers["location"])


async def test_the_m3u_needs_a_key_and_writes_it_into_every_url(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness(m3u_config(player_keys=(KEY, OTHER)), origin=Origin()) as h:
        assert refused_for_want_of_a_key(await h.client.get("/playlist.m3u"))
        listing = await fetch_m3u(h.client, f"/playlist.m3u?key={OTHER}")
        assert listing.entries
        for entry in listing.entries:
            assert entry.url.startswith(PROXY_URL)
            assert parse_qs(urlsplit(entry.url).query)["key"] == [OTHER]
            await plays(h.client, entry.url)
        ts = await fetch_m3u(h.client, "/playlist.m3u", params={"key": KEY, "format": "ts"})
        assert all(parse_qs(urlsplit(e.url).query)["key"] == [KEY] for e in ts.entries)


async def test_health_status_and_the_page_need_no_key() -> None:
    async with harness(keyed()) as h:
        for path in ("/healthz", "/proxy/status", "/"):
            assert (await h.client.get(path)).status_code == 200, path


def test_keys_come_from_the_variable_and_the_file(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"# players\n\n{OTHER}\n  {KEY}  \n", encoding="utf-8")
    config = load_config(
        {
            "TRIOPROXY_PLAYER_KEYS": f" {KEY} , carol-0123456789",
            "TRIOPROXY_PLAYER_KEYS_FILE": str(keys_file),
        }
    )
    keys = PlayerKeys.of(config)
    assert len(keys) == 3
    assert all(keys.valid(k) for k in (KEY, OTHER, "carol-0123456789"))
    assert not keys.valid(None)
    assert not keys.valid("")
    assert not keys.valid(KEY.upper())
    assert KEY not in repr(config)
    assert OTHER not in repr(config)


@pytest.mark.parametrize("bad", ["short", "has space 0123456789", 'quote"0123456789ab'])
def test_a_bad_key_stops_start_up_without_being_echoed(bad: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config({"TRIOPROXY_PLAYER_KEYS": f"{KEY},{bad}"})
    assert "TRIOPROXY_PLAYER_KEYS" in str(caught.value)
    assert bad not in str(caught.value)
    assert KEY not in str(caught.value)


@pytest.mark.parametrize(
    ("changes", "open_streams"),
    [
        ({"bind": "0.0.0.0:8000"}, True),
        ({"bind": "0.0.0.0:8000", "api_key": "an-api-key-0123456789"}, True),
        ({"bind": "127.0.0.1:8000"}, False),
        ({"bind": "0.0.0.0:8000", "player_keys": (KEY,)}, False),
    ],
)
def test_start_up_says_whether_stream_urls_are_open(
    caplog: pytest.LogCaptureFixture, changes: dict[str, Any], open_streams: bool
) -> None:
    caplog.set_level(logging.INFO, logger="trioproxy.http.guards")
    log_access(default_config(**changes))
    streams = [r for r in caplog.records if r.getMessage().startswith("stream URLs")]
    is_open = [r for r in streams if "stream URLs are open" in r.getMessage()]
    assert len(is_open) == (1 if open_streams else 0)
    if open_streams:
        assert is_open[0].levelno == logging.WARNING
        assert "TRIOPROXY_PLAYER_KEYS" in is_open[0].getMessage()
    if "player_keys" in changes:
        assert "1 player key(s)" in streams[0].getMessage()
    assert KEY not in caplog.text
