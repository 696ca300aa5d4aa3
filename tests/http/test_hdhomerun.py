"""The proxy as an HDHomeRun tuner, read the way media servers read one: Jellyfin's
``HdHomerunHost`` (``discover.json``, then ``LineupURL`` or ``BaseURL + /lineup.json``, each
``URL`` played as MPEG-TS), Plex's scan (``POST /lineup.post?scan=start``, then
``lineup_status.json`` until ``ScanInProgress`` is 0). In memory, on the virtual clock."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import trio
import trio.testing

from trioproxy.config import ConfigError, load_config
from trioproxy.config.channels import parse_channels_file
from trioproxy.config.tuner import is_valid_device_id
from trioproxy.hls.mpegts import NULL_PACKET
from trioproxy.testing.engine import SimulatedEngine
from trioproxy.testing.harness import (
    CONTENT_A,
    CONTENT_B,
    PROXY_URL,
    Harness,
    default_config,
    harness,
    small_media,
)
from trioproxy.testing.orchestrator import FakeOrchestrator

from ..ts_client import TsClient

CHANNELS = f"""\
name,stream,tvg-id,logo,group
Alpha,{CONTENT_A},alpha.tv,,Sport
Beta,{CONTENT_B},,,News
"""
KEY = "alice-0123456789abcdef"
HOUSEHOLD = ipaddress.ip_network("192.0.2.10/32")


def config(**changes: Any) -> Any:
    return default_config(channels_file=parse_channels_file(CHANNELS), **changes)


@dataclass
class Tuned:
    """What Jellyfin keeps of a tuner: its model and its channels."""

    model: dict[str, Any]
    channels: list[dict[str, Any]]


async def jellyfin_add_tuner(client: httpx.AsyncClient, typed: str) -> Tuned:
    """Jellyfin's ``HdHomerunHost``: ``GetApiUrl`` of the address typed, ``discover.json``,
    then the lineup at ``LineupURL ?? BaseURL + "/lineup.json"``, without ``DRM`` channels."""
    api = typed if typed.startswith("http") else "http://" + typed
    discover = await client.get(api.rstrip("/") + "/discover.json")
    discover.raise_for_status()
    model = discover.json()
    lineup_url = model.get("LineupURL") or model["BaseURL"] + "/lineup.json"
    lineup = await client.get(lineup_url)
    lineup.raise_for_status()
    return Tuned(model, [row for row in lineup.json() if not row.get("DRM")])


def stream_url(tuned: Tuned, channel: dict[str, Any], profile: str = "native") -> str:
    """The URL Jellyfin plays: the channel's ``URL``, plus ``?transcode=`` for models that
    transcode (``hdtc`` in their ``ModelNumber``)."""
    url = str(channel["URL"])
    if "hdtc" in tuned.model["ModelNumber"].lower() and profile != "native":
        url += "?transcode=" + profile
    return url


def ts_player(h: Harness, url: str, peer: str = "127.0.0.1") -> TsClient:
    parts = urlsplit(url)
    return TsClient(h.app, parts.path, parts.query, peer=peer)


async def test_jellyfin_adds_the_tuner_and_every_channel_plays_media_first(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The engine prebuffers for 10 s: a TS URL's keepalive would send null packets meanwhile.
    engine = SimulatedEngine(small_media(), durations=[2.0], prebuffer=10.0)
    async with harness(config(), engine=engine) as h:
        tuned = await jellyfin_add_tuner(h.client, "proxy.test")
        model = tuned.model
        assert set(model) >= {"FriendlyName", "ModelNumber", "FirmwareName", "FirmwareVersion"}
        assert model["FriendlyName"] == "trioproxy"
        assert model["BaseURL"] == PROXY_URL
        assert model["LineupURL"] == f"{PROXY_URL}/lineup.json"
        assert is_valid_device_id(model["DeviceID"])
        assert model["TunerCount"] == 3  # one engine, ACEXY_MAX_STREAMS_PER_ENGINE 3
        assert [(c["GuideNumber"], c["GuideName"]) for c in tuned.channels] == [
            ("1", "Alpha"),
            ("2", "Beta"),
        ]
        assert h.registry.channels == []  # reading the lineup starts nothing
        async with trio.open_nursery() as nursery:
            players = [ts_player(h, stream_url(tuned, c, "internet720")) for c in tuned.channels]
            for player in players:
                nursery.start_soon(player.run)
            await trio.sleep(9.9)
            assert [p.status for p in players] == [None, None]  # no answer, no null packet
            await trio.sleep(4.2)
            for player, key in zip(players, (CONTENT_A, CONTENT_B), strict=True):
                assert player.status == 200
                assert player.headers[b"content-type"] == b"video/mp2t"
                first = player.chunks[0][1]
                assert first[:188] != NULL_PACKET
                assert first in [h.sim.segment_bytes(n) for n in range(4)]
                assert h.channel(key).name == key
                player.leave()
        assert len(h.sim.sessions) == 2


async def test_the_default_ts_url_keeps_its_keepalive(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Only lineup URLs (``keepalive=0``) wait for media; other TS URLs answer at once, and
    send null packets after TRIOPROXY_TS_KEEPALIVE (5 s) of silence."""
    engine = SimulatedEngine(small_media(), durations=[2.0], prebuffer=10.0)
    async with harness(config(), engine=engine) as h, trio.open_nursery() as nursery:
        player = ts_player(h, f"/ace/getstream?id={CONTENT_A}&format=ts")
        nursery.start_soon(player.run)
        await player.started.wait()
        assert trio.current_time() == 0.0
        await trio.sleep(5.01)
        assert player.chunks[0] == (5.0, NULL_PACKET)
        player.leave()


async def test_plex_scans_then_reads_the_same_device_everywhere(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness(config()) as h:
        discover = (await h.client.get("/discover.json")).json()
        scan = await h.client.post("/lineup.post", params={"scan": "start", "source": "Cable"})
        assert scan.status_code == 200
        for _ in range(3):
            status = (await h.client.get("/lineup_status.json")).json()
            if status["ScanInProgress"] == 0:
                break
            await trio.sleep(1)
        assert status == {
            "ScanInProgress": 0,
            "ScanPossible": 1,
            "Source": "Cable",
            "SourceList": ["Cable"],
        }
        assert len((await h.client.get("/lineup.json")).json()) == 2
        device = (await h.client.get("/device.xml")).text
        assert f"<serialNumber>{discover['DeviceID']}</serialNumber>" in device
        assert f"<friendlyName>{discover['FriendlyName']}</friendlyName>" in device
        assert f"<URLBase>{PROXY_URL}</URLBase>" in device
        m3u = (await h.client.get("/lineup.m3u")).text
        ts_url = f"{PROXY_URL}/ace/getstream?id={CONTENT_A}&format=ts&keepalive=0"
        assert m3u.splitlines()[2] == ts_url
        bad = await h.client.post("/lineup.post", params={"scan": "now"})
        assert bad.status_code == 400
        assert bad.json()["error"] == "bad_request"
        assert h.sim.sessions == {}


async def test_the_device_id_is_stable_and_valid() -> None:
    ids = []
    for _ in range(2):
        async with harness(config(bind="0.0.0.0:8000")) as h:
            ids.append((await h.client.get("/discover.json")).json()["DeviceID"])
    assert ids[0] == ids[1]
    async with harness(config(bind="0.0.0.0:8000", tuner_name="den")) as h:
        assert (await h.client.get("/discover.json")).json()["DeviceID"] != ids[0]
    env = {"TRIOPROXY_TUNER_DEVICE_ID": "105404be"}  # a SiliconDust tuner's own
    assert load_config(env).tuner_device_id == "105404BE"
    with pytest.raises(ConfigError, match=r"TRIOPROXY_TUNER_DEVICE_ID.*check digit"):
        load_config({"TRIOPROXY_TUNER_DEVICE_ID": "105404BF"})


async def test_the_tuner_count_is_what_the_engines_carry_and_drops_when_one_leaves(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def engine(name: str, port: int) -> dict[str, Any]:
        return {
            "container_id": name,
            "host": "engine.test",
            "port": port,
            "forwarded": False,
            "health_status": "healthy",
        }

    orchestrator = FakeOrchestrator(engines=[engine("one", 6878), engine("two", 6879)])
    async with harness(config(engines=()), orchestrator=orchestrator) as h:
        await trio.sleep(0.1)
        assert (await h.client.get("/discover.json")).json()["TunerCount"] == 6
        orchestrator.engines = [engine("one", 6878)]
        await trio.sleep(h.config.engine_refresh_interval)
        assert (await h.client.get("/discover.json")).json()["TunerCount"] == 3
    async with harness(config(tuner_count=2)) as h:
        assert (await h.client.get("/discover.json")).json()["TunerCount"] == 2


async def test_a_channel_the_engines_cannot_open_answers_a_json_error_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness(config(max_streams_per_engine=1)) as h:
        lineup = (await h.client.get("/lineup.json")).json()
        await h.wait_channel(CONTENT_A)  # the only engine slot
        began = trio.current_time()
        full = await h.client.get(lineup[1]["URL"])
        assert full.status_code == 503
        assert full.json()["error"] == "no_engine_available"
        assert "retry-after" in full.headers
        assert trio.current_time() == began
    async with harness(config()) as h:
        h.engine.dead[CONTENT_B] = "refused"  # the engine answers, and has nothing
        lineup = (await h.client.get("/lineup.json")).json()
        began = trio.current_time()
        refused = await h.client.get(lineup[1]["URL"])
        assert refused.status_code == 502, refused.text
        assert refused.headers["content-type"] == "application/json"
        assert trio.current_time() - began < 5


async def test_lineup_urls_carry_the_key_and_a_media_server_needs_none(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness(config(player_keys=(KEY,))) as h:
        assert (await h.client.get("/discover.json")).status_code == 401
        discover = (await h.client.get("/discover.json", params={"key": KEY})).json()
        assert parse_qs(urlsplit(discover["LineupURL"]).query)["key"] == [KEY]
        lineup = (await h.client.get(discover["LineupURL"])).json()
        assert all(parse_qs(urlsplit(row["URL"]).query)["key"] == [KEY] for row in lineup)
    loopback = ipaddress.ip_network("127.0.0.1/32")  # the harness client's address
    async with harness(config(player_keys=(KEY,), media_servers=(loopback,))) as h:
        tuned = await jellyfin_add_tuner(h.client, PROXY_URL)
        assert all("key=" not in row["URL"] for row in tuned.channels)
        async with trio.open_nursery() as nursery:
            player = ts_player(h, tuned.channels[0]["URL"])
            nursery.start_soon(player.run)
            await trio.sleep(3)
            assert player.status == 200
            assert player.chunks
            player.leave()
            elsewhere = ts_player(h, tuned.channels[0]["URL"], peer="198.51.100.7")
            await elsewhere.run()
            assert elsewhere.status == 401


async def test_a_media_server_is_not_capped_per_address_while_another_address_is(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """TRIOPROXY_MAX_PLAYERS_PER_ADDRESS (32) caps a household's phone, not its Plex."""
    async with harness(config(media_servers=(HOUSEHOLD,))) as h:
        url = (await h.client.get("/lineup.json")).json()[0]["URL"]
        plex = [ts_player(h, url, peer="192.0.2.10") for _ in range(40)]
        other = [ts_player(h, url, peer="192.0.2.11") for _ in range(33)]
        async with trio.open_nursery() as nursery:
            for player in plex:
                nursery.start_soon(player.run)
            await trio.sleep(5)
            for player in other:
                nursery.start_soon(player.run)
                await trio.sleep(0.01)
            await trio.sleep(1)
            assert [p.status for p in plex] == [200] * 40
            assert [p.status for p in other] == [200] * 32 + [503]
            refused = json.loads(other[-1].body)
            assert "TRIOPROXY_MAX_PLAYERS_PER_ADDRESS" in refused["message"]
            for player in plex + other:
                player.leave()
        assert len(h.sim.sessions) == 1
