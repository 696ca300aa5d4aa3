"""The Xtream Codes API as IPTV apps use it (TiviMate, IPTV Smarters, Kodi IPTV Simple): log in
with a server, a user name and a password, list categories and channels, play one. In memory,
on the virtual clock."""

from __future__ import annotations

import base64
import logging
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import trio
import trio.testing

from trioproxy.config.channels import parse_channels_file
from trioproxy.http.app import ProxyApp
from trioproxy.http.lineup import Lineup
from trioproxy.testing.harness import (
    CONTENT_A,
    CONTENT_B,
    PROXY_URL,
    Harness,
    asgi_transport,
    default_config,
    harness,
)

from ..ts_client import TsClient
from .iptv import read_m3u

PASSWORD = "s3cret-0123456789abcdef"
OTHER_KEY = "bob-fedcba9876543210xyz"
HASH = "c" * 40
CHANNELS = f"""\
name,stream,tvg-id,logo,group
Alpha,{CONTENT_A},alpha.tv,https://logos.example/a.png,Sport
Beta,{CONTENT_B},,,News
Gamma,infohash:{HASH},gamma.tv,,Sport
"""


def config(**changes: Any) -> Any:
    return default_config(
        channels_file=parse_channels_file(CHANNELS),
        xtream_users=(("alice", PASSWORD),),
        **changes,
    )


class XtreamApp:
    """What an IPTV app does with a server URL, a user name and a password."""

    def __init__(self, client: httpx.AsyncClient, user: str = "alice", password: str = PASSWORD):
        self.client = client
        self.login = {"username": user, "password": password}

    async def api(self, **params: str) -> Any:
        response = await self.client.get("/player_api.php", params={**self.login, **params})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        return response.json()

    def live_path(self, stream_id: int, extension: str = "ts") -> str:
        return f"/live/{self.login['username']}/{self.login['password']}/{stream_id}.{extension}"


def ts_player(h: Harness, path: str) -> TsClient:
    return TsClient(h.app, path)


async def test_an_app_logs_in_lists_categories_and_streams_and_plays_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness(config()) as h:
        app = XtreamApp(h.client)
        account = await app.api()
        user = account["user_info"]
        assert (user["auth"], user["status"], user["username"]) == (1, "Active", "alice")
        assert set(user["allowed_output_formats"]) == {"m3u8", "ts"}
        server = account["server_info"]
        assert (server["url"], server["port"], server["server_protocol"]) == (
            "proxy.test",
            "80",
            "http",
        )
        categories = await app.api(action="get_live_categories")
        assert [c["category_name"] for c in categories] == ["Sport", "News"]
        streams = await app.api(action="get_live_streams")
        assert [(s["num"], s["name"], s["stream_type"]) for s in streams] == [
            (1, "Alpha", "live"),
            (2, "Beta", "live"),
            (3, "Gamma", "live"),
        ]
        assert [s["epg_channel_id"] for s in streams] == ["alpha.tv", None, "gamma.tv"]
        assert streams[0]["stream_icon"] == "https://logos.example/a.png"
        sport = await app.api(action="get_live_streams", category_id=categories[0]["category_id"])
        assert [s["name"] for s in sport] == ["Alpha", "Gamma"]
        for action in ("get_vod_categories", "get_vod_streams", "get_series_categories"):
            assert await app.api(action=action) == []
        assert h.registry.channels == []  # listing starts nothing
        # TiviMate plays MPEG-TS: the same channel an /ace/getstream player gets.
        async with trio.open_nursery() as nursery:
            player = ts_player(h, app.live_path(streams[0]["stream_id"]))
            nursery.start_soon(player.run)
            await trio.sleep(3)
            assert player.status == 200
            assert player.headers[b"content-type"] == b"video/mp2t"
            assert player.body
            assert h.channel(CONTENT_A).ts.players
            # An HLS app: a redirect into the channel's playlist URL, with the password as key.
            hls = await h.client.get(app.live_path(streams[0]["stream_id"], "m3u8"))
            assert hls.status_code == 302
            location = hls.headers["location"]
            assert urlsplit(location).path == f"/ace/hls/{CONTENT_A}/index.m3u8"
            assert parse_qs(urlsplit(location).query)["key"] == [PASSWORD]
            playlist = await h.client.get(location)
            assert playlist.status_code == 200
            player.leave()
        assert len(h.sim.sessions) == 1
        infohash = await h.client.get(app.live_path(streams[2]["stream_id"], "m3u8"))
        assert "kind=infohash" in infohash.headers["location"]


async def test_get_php_lists_live_urls_that_play(autojump_clock: trio.testing.MockClock) -> None:
    async with harness(config()) as h:
        app = XtreamApp(h.client)
        streams = await app.api(action="get_live_streams")
        response = await h.client.get("/get.php", params={**app.login, "type": "m3u_plus"})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("audio/x-mpegurl")
        listing = read_m3u(response.text)
        assert [e.name for e in listing.entries] == ["Alpha", "Beta", "Gamma"]
        assert [e.attributes["group-title"] for e in listing.entries] == ["Sport", "News", "Sport"]
        assert [e.url for e in listing.entries] == [
            f"{PROXY_URL}{app.live_path(s['stream_id'])}" for s in streams
        ]
        hls = await h.client.get("/get.php", params={**app.login, "output": "m3u8"})
        assert read_m3u(hls.text).entries[1].url.endswith(f"/{streams[1]['stream_id']}.m3u8")
        async with trio.open_nursery() as nursery:
            player = ts_player(h, urlsplit(listing.entries[1].url).path)
            nursery.start_soon(player.run)
            await trio.sleep(3)
            assert player.status == 200
            assert player.body
            player.leave()
        assert [s.key for s in h.sim.sessions.values()] == [CONTENT_B]


async def test_a_wrong_login_or_key_is_refused_and_opens_nothing(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-0123456789abcdef"
    async with harness(config(player_keys=(OTHER_KEY,))) as h:
        stream_id = (await XtreamApp(h.client).api(action="get_live_streams"))[0]["stream_id"]
        for user, password in (("alice", wrong), ("mallory", PASSWORD), ("alice", "")):
            app = XtreamApp(h.client, user, password)
            assert await app.api() == {"user_info": {"auth": 0}}
            assert await app.api(action="get_live_streams") == {"user_info": {"auth": 0}}
            if password:
                for extension in ("ts", "m3u8"):
                    path = app.live_path(stream_id, extension)
                    player = ts_player(h, path)
                    await player.run()
                    assert player.status == 401, path
            for path in ("/get.php", "/xmltv.php"):
                refused = await h.client.get(path, params=app.login)
                assert refused.status_code == 401
                assert refused.json()["error"] == "unauthorized"
        # A wrong player key is refused as well; the password works as a key.
        bad_key = await h.client.get("/ace/getstream", params={"id": CONTENT_A, "key": wrong})
        assert bad_key.status_code == 401
        assert h.sim.sessions == {}
        assert h.registry.channels == []
        good_key = await h.client.get("/ace/getstream", params={"id": CONTENT_A, "key": PASSWORD})
        assert good_key.status_code == 302
    # The proxy logs neither password (the test's own client, httpx, logs its URLs).
    ours = [r.getMessage() for r in caplog.records if not r.name.startswith("httpx")]
    assert ours
    assert not [line for line in ours if wrong in line or PASSWORD in line]


async def test_without_logins_there_is_no_xtream_api() -> None:
    async with harness(default_config(channels_file=parse_channels_file(CHANNELS))) as h:
        response = await h.client.get("/player_api.php", params={"username": "a", "password": "b"})
        assert response.status_code == 404
        assert "TRIOPROXY_XTREAM_USERS" in response.json()["message"]


async def test_the_guide_fills_short_epg_and_xmltv_sends_apps_to_it() -> None:
    asked: list[tuple[str, int]] = []

    def short_epg(tvg_id: str, limit: int) -> list[dict[str, Any]]:
        asked.append((tvg_id, limit))
        return [{"title": "Nëws", "description": None, "start": 1767297600, "stop": 1767299400}]

    async with harness(config()) as h:
        app = XtreamApp(h.client)
        alpha, beta, _ = await app.api(action="get_live_streams")
        no_guide = await app.api(action="get_short_epg", stream_id=str(alpha["stream_id"]))
        assert no_guide == {"epg_listings": []}
        guided = ProxyApp(h.registry, h.config, short_epg=short_epg)
        async with httpx.AsyncClient(transport=asgi_transport(guided), base_url=PROXY_URL) as c:
            app = XtreamApp(c)
            listings = await app.api(
                action="get_short_epg", stream_id=str(alpha["stream_id"]), limit="2"
            )
            # As Xtream servers list them: base64 texts, UTC clock times and epoch strings.
            assert listings == {
                "epg_listings": [
                    {
                        "id": "1",
                        "epg_id": "1",
                        "title": base64.b64encode("Nëws".encode()).decode(),
                        "lang": "",
                        "start": "2026-01-01 20:00:00",
                        "end": "2026-01-01 20:30:00",
                        "description": "",
                        "channel_id": "alpha.tv",
                        "start_timestamp": "1767297600",
                        "stop_timestamp": "1767299400",
                    }
                ]
            }
            # A channel without a tvg-id, or no such stream: nothing to ask the guide.
            for stream_id in (str(beta["stream_id"]), "7"):
                empty = await app.api(action="get_short_epg", stream_id=stream_id)
                assert empty == {"epg_listings": []}
            assert asked == [("alpha.tv", 2)]
            bad = await c.get(
                "/player_api.php", params={**app.login, "action": "get_short_epg", "stream_id": "x"}
            )
            assert bad.status_code == 400
            unknown = await c.get("/player_api.php", params={**app.login, "action": "nope"})
            assert unknown.status_code == 400
            assert unknown.json()["error"] == "bad_request"
            guide = await c.get("/xmltv.php", params=app.login)
            assert guide.status_code == 302
            # The passwords are player keys: the guide URL carries the one the app gave.
            assert guide.headers["location"] == f"/epg.xml?key={PASSWORD}"


def test_stream_ids_survive_restarts_and_edits_of_other_lines() -> None:
    before = Lineup(parse_channels_file(CHANNELS))
    edited = CHANNELS.replace("name,stream,tvg-id,logo,group\n", "").replace("Beta", "Beta renamed")
    edited = f"Delta,{'d' * 40},,,Films\n" + edited
    after = Lineup(parse_channels_file(edited))
    assert [c.stream_id for c in Lineup(parse_channels_file(CHANNELS)).channels] == [
        c.stream_id for c in before.channels
    ]
    ids = {c.entry.key: c.stream_id for c in after.channels}
    assert all(ids[c.entry.key] == c.stream_id for c in before.channels)
    assert len(set(ids.values())) == 4
    assert all(0 < i < 2**31 for i in ids.values())
    assert {name: number for number, name in after.categories}["Sport"] == dict(
        (name, number) for number, name in before.categories
    )["Sport"]
