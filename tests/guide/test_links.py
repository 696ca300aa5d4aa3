"""What points at the guide and what it gives other routes: the M3U's ``url-tvg``, player keys,
the next programmes of a channel; and a refresher that stops with the proxy, mid-fetch."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from trioproxy.config import ConfigError, load_config
from trioproxy.testing.harness import harness

from ..http.iptv import read_m3u
from .epg import EPG_HOST, EPG_URL, GOOD, NOW, EpgServer, epg_config, guide, slowly

KEY = "guide-key-0123456789"


async def test_the_m3u_names_our_guide_when_sources_are_set(tmp_path: Path) -> None:
    config = epg_config(tmp_path, epg_url="https://elsewhere.example/guide.xml")
    async with harness(config) as h:
        response = await h.client.get("/playlist.m3u", headers={"Host": "proxy.lan:8000"})
        listing = read_m3u(response.text)
        ours = "http://proxy.lan:8000/epg.xml"
        assert listing.attributes == {"url-tvg": ours, "x-tvg-url": ours}
    # Without sources, the guide elsewhere is named, as before.
    async with harness(epg_config(tmp_path, epg_sources=(), epg_url=config.epg_url)) as h:
        listing = read_m3u((await h.client.get("/playlist.m3u")).text)
        assert listing.attributes["url-tvg"] == "https://elsewhere.example/guide.xml"


async def test_with_player_keys_the_guide_needs_one_and_the_m3u_carries_it(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    server = EpgServer()
    server.serve(guide(GOOD))
    config = epg_config(tmp_path, player_keys=(KEY,))
    async with harness(config, mounts={EPG_HOST: server.transport()}) as h:
        await trio.sleep(1)
        for path in ("/epg.xml", "/epg.xml.gz"):
            refused = await h.client.get(path)
            assert refused.status_code == 401
            assert (
                await h.client.get(path, params={"key": "wrong-key-0123456"})
            ).status_code == 401
        listing = read_m3u((await h.client.get("/playlist.m3u", params={"key": KEY})).text)
        url_tvg = listing.attributes["url-tvg"]
        assert url_tvg == f"http://proxy.test/epg.xml?key={KEY}"
        assert (await h.client.get(url_tvg)).status_code == 200


async def test_the_next_programmes_of_a_channel_as_plain_data(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    server = EpgServer()
    # Half-hour shows, the first begun 15 minutes ago; the guide takes a second to arrive.
    server.serve(slowly(guide(GOOD), piece=1 << 20, every=1.0))
    async with harness(epg_config(tmp_path), mounts={EPG_HOST: server.transport()}) as h:
        assert h.registry.guide.short_epg("bbc1.uk", 2) == []  # nothing fetched yet
        await trio.sleep(2)
        start = int(NOW) - 900
        shows: list[dict[str, Any]] = h.registry.guide.short_epg("BBC1.UK", 2)
        assert shows == [
            {
                "title": "News",
                "description": "About News & more.",
                "start": start,
                "stop": start + 1800,
            },
            {
                "title": "Weather",
                "description": "About Weather & more.",
                "start": start + 1800,
                "stop": start + 3600,
            },
        ]
        assert [show["title"] for show in h.registry.guide.short_epg("local.news", 10)] == [
            "Local",
            "Sport",
        ]
        assert h.registry.guide.short_epg("unlisted.tv", 10) == []


async def test_the_refresher_stops_with_the_proxy_mid_fetch(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    server = EpgServer()
    closed: list[float] = []

    async def hanging() -> Any:
        try:
            async for piece in slowly(guide(GOOD), piece=50, every=1.0)():
                yield piece
        finally:
            closed.append(trio.current_time())

    server.serve(hanging)
    async with harness(epg_config(tmp_path), mounts={EPG_HOST: server.transport()}) as h:
        await trio.sleep(10)
        assert server.requests == [0.0]
        assert closed == []
    # The harness returned: the registry's nursery, the refresher in it, is done.
    assert closed == [10.0]
    assert h.registry.task_names == []


def test_the_guide_settings_and_what_stops_start_up(tmp_path: Path) -> None:
    bare = tmp_path / "bare.csv"
    bare.write_text("BBC One,0123456789abcdef0123456789abcdef01234567\n", encoding="utf-8")
    listed = tmp_path / "listed.csv"
    listed.write_text("BBC One,0123456789abcdef0123456789abcdef01234567,bbc1.uk\n", "utf-8")
    for environ in (
        {"TRIOPROXY_EPG_SOURCES": EPG_URL},
        {"TRIOPROXY_EPG_SOURCES": EPG_URL, "TRIOPROXY_CHANNELS_FILE": str(bare)},
    ):
        with pytest.raises(ConfigError, match="TRIOPROXY_EPG_SOURCES needs a TRIOPROXY_CHANNELS"):
            load_config(environ)
    config = load_config(
        {
            "TRIOPROXY_EPG_SOURCES": f"{EPG_URL}, http://b.test/g.xml.gz",
            "TRIOPROXY_CHANNELS_FILE": str(listed),
            "TRIOPROXY_EPG_REFRESH": "3600",
            "TRIOPROXY_EPG_MAX_BYTES": "50M",
            "TRIOPROXY_STATE_DIR": " /var/lib/trioproxy ",
        }
    )
    assert config.epg_sources == (EPG_URL, "http://b.test/g.xml.gz")
    assert (config.epg_refresh, config.epg_max_bytes) == (3600.0, 50 << 20)
    assert config.state_dir == "/var/lib/trioproxy"
    assert (load_config({}).epg_refresh, load_config({}).epg_timeout) == (21600.0, 300.0)


async def test_an_xtream_app_reads_the_guide_as_short_epg(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    password = "guide-pass-0123456789"
    server = EpgServer()
    server.serve(guide(GOOD))
    config = epg_config(tmp_path, xtream_users=(("alice", password),))
    async with harness(config, mounts={EPG_HOST: server.transport()}) as h:
        await trio.sleep(1)
        login = {"username": "alice", "password": password}
        streams = (
            await h.client.get("/player_api.php", params={**login, "action": "get_live_streams"})
        ).json()
        bbc = next(stream for stream in streams if stream["epg_channel_id"] == "bbc1.uk")
        answer = await h.client.get(
            "/player_api.php",
            params={**login, "action": "get_short_epg", "stream_id": str(bbc["stream_id"])},
        )
        listings = answer.json()["epg_listings"]
        titles = [base64.b64decode(item["title"]).decode() for item in listings]
        assert titles == ["News", "Weather", "Film"]
        assert [item["channel_id"] for item in listings] == ["bbc1.uk"] * 3
        first = h.registry.guide.short_epg("bbc1.uk", 1)[0]
        assert listings[0]["start_timestamp"] == str(first["start"])
