"""Caps per client address: one address varying its tokens and User-Agents is capped on players,
channels and session opens; another address still gets in; the caps free up as players leave."""

from __future__ import annotations

import ipaddress

import httpx
import trio
import trio.testing

from tests.origin import origin_config
from tests.ts_client import TsClient
from tests.upstream.test_sources import FEED, news_origin
from trioproxy.channels.per_address import address_key
from trioproxy.testing.engine import SimulatedEngine
from trioproxy.testing.harness import (
    CONTENT_A,
    CONTENT_B,
    Harness,
    default_config,
    harness,
    small_media,
)

CONTENT_C = "c" * 40
CONTENT_D = "d" * 40
HOME = "198.51.100.1"
NEIGHBOUR = "198.51.100.2"
LOOPBACK_PROXY = (ipaddress.ip_network("127.0.0.0/8"),)
"""The harness's peer is 127.0.0.1: trusted, so X-Forwarded-For names the client."""

_agents = iter(range(1_000_000))


def _headers(address: str) -> dict[str, str]:
    """A request from ``address`` with a User-Agent never seen before."""
    return {"X-Forwarded-For": address, "User-Agent": f"tv/{next(_agents)}"}


async def _getstream(h: Harness, key: str, address: str) -> httpx.Response:
    return await h.client.get("/ace/getstream", params={"id": key}, headers=_headers(address))


async def _play(h: Harness, key: str, address: str) -> httpx.Response:
    """A new player from ``address``: its own token (from getstream) and its own User-Agent;
    the refusal when getstream refuses it already."""
    started = await _getstream(h, key, address)
    if started.status_code != 302:
        return started
    return await h.client.get(started.headers["location"], headers=_headers(address))


def test_address_key() -> None:
    assert address_key("198.51.100.1") == "198.51.100.1"
    # One IPv6 household is one /64, however many addresses it uses.
    assert (
        address_key("2001:db8:1:2::1")
        == address_key("2001:db8:1:2:ffff::9")
        == ("2001:db8:1:2::/64")
    )
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:198.51.100.1") == "198.51.100.1"
    assert address_key("not an address") == "not an address"


async def test_players_per_address(autojump_clock: trio.testing.MockClock) -> None:
    config = default_config(
        trusted_proxies=LOOPBACK_PROXY, max_players_per_address=3, max_streams_per_engine=10
    )
    async with harness(config) as h:
        await h.wait_channel(CONTENT_A)
        await h.wait_channel(CONTENT_B)
        t0 = trio.current_time()
        assert (await _play(h, CONTENT_A, HOME)).status_code == 200
        assert (await _play(h, CONTENT_A, HOME)).status_code == 200
        kept = await _getstream(h, CONTENT_B, HOME)
        kept_url = kept.headers["location"]
        assert (await h.client.get(kept_url, headers=_headers(HOME))).status_code == 200
        # A fourth player from the same address, on any channel, with any token or agent.
        for key in (CONTENT_A, CONTENT_B):
            refused = await _play(h, key, HOME)
            assert refused.status_code == 503
            assert refused.json()["error"] == "over_capacity"
            assert "TRIOPROXY_MAX_PLAYERS_PER_ADDRESS" in refused.json()["message"]
            assert refused.headers["retry-after"] == "10"
        no_token = await h.client.get(f"/ace/hls/{CONTENT_A}/index.m3u8", headers=_headers(HOME))
        assert no_token.status_code == 503
        # Its players keep being served; the channels are far from their own cap.
        assert (await h.client.get(kept_url, headers=_headers(HOME))).status_code == 200
        assert h.channel(CONTENT_A).clients.count(trio.current_time()) == 2
        # Another address is not affected.
        assert (await _play(h, CONTENT_A, NEIGHBOUR)).status_code == 200
        assert (await _play(h, CONTENT_B, NEIGHBOUR)).status_code == 200
        status = (await h.client.get("/proxy/status")).json()
        assert status["limits_per_address"]["max_players"] == 3
        assert status["limits_per_address"]["refused"] == {"players": 3}
        # Players gone with their channel free their slots at once.
        assert (await h.client.delete(f"/proxy/channels/{CONTENT_B}")).status_code == 202
        assert (await _play(h, CONTENT_A, HOME)).status_code == 200
        assert (await _play(h, CONTENT_A, HOME)).status_code == 503
        assert trio.current_time() == t0
        # Players that stop reloading leave after HLS_CLIENT_IDLE_TIMEOUT (10 s), not before.
        await trio.sleep(9.5)
        assert (await _play(h, CONTENT_A, NEIGHBOUR)).status_code == 200  # keeps A watched
        assert (await _play(h, CONTENT_A, HOME)).status_code == 503
        await trio.sleep(0.5)
        assert trio.current_time() == t0 + 10.0
        assert (await _play(h, CONTENT_A, HOME)).status_code == 200


async def test_channels_per_address(autojump_clock: trio.testing.MockClock) -> None:
    config = default_config(
        trusted_proxies=LOOPBACK_PROXY, max_channels_per_address=2, max_streams_per_engine=10
    )
    async with harness(config) as h:
        assert (await _getstream(h, CONTENT_A, HOME)).status_code == 302
        assert (await _getstream(h, CONTENT_B, HOME)).status_code == 302
        refused = await _getstream(h, CONTENT_C, HOME)
        assert refused.status_code == 503
        assert "TRIOPROXY_MAX_CHANNELS_PER_ADDRESS" in refused.json()["message"]
        assert refused.headers["retry-after"] == "10"
        direct = await h.client.get(f"/ace/hls/{CONTENT_C}/index.m3u8", headers=_headers(HOME))
        assert direct.status_code == 503
        await trio.testing.wait_all_tasks_blocked()
        assert h.registry.get(CONTENT_C) is None
        assert h.engine.requests["open"] == 2  # nothing was started for the refused ones
        # Joining a running channel starts nothing: allowed.
        assert (await _getstream(h, CONTENT_A, HOME)).status_code == 302
        # Another address starts what this one may not.
        assert (await _getstream(h, CONTENT_C, NEIGHBOUR)).status_code == 302
        status = (await h.client.get("/proxy/status")).json()
        assert status["limits_per_address"]["refused"] == {"channels": 2}
        assert status["limits_per_address"]["addresses"] == 2
        # Nobody plays A or B: they stop after PROXY_GRACE_PERIOD (5 s), and the address may
        # start channels again.
        await trio.sleep_until(4.5)
        assert (await _getstream(h, CONTENT_D, HOME)).status_code == 503
        await trio.sleep_until(5.0)
        await trio.testing.wait_all_tasks_blocked()
        assert h.registry.get(CONTENT_A) is None
        assert trio.current_time() == 5.0
        assert (await _getstream(h, CONTENT_D, HOME)).status_code == 302


async def test_session_opens_per_address(autojump_clock: trio.testing.MockClock) -> None:
    engine = SimulatedEngine(small_media(), durations=[2.0], backlog=6.0, open_delay=5.0)
    config = default_config(
        trusted_proxies=LOOPBACK_PROXY,
        max_opening_per_address=1,
        max_opening_per_engine=5,
        max_streams_per_engine=10,
        proxy_grace_period=60.0,
    )
    async with harness(config, engine=engine) as h:
        assert (await _getstream(h, CONTENT_A, HOME)).status_code == 302
        await trio.testing.wait_all_tasks_blocked()
        refused = await _getstream(h, CONTENT_B, HOME)
        assert refused.status_code == 503
        assert "TRIOPROXY_MAX_OPENING_PER_ADDRESS" in refused.json()["message"]
        assert refused.headers["retry-after"] == "2"
        assert h.registry.get(CONTENT_B) is None
        # The engine has room: another address opens a session on it meanwhile.
        assert (await _getstream(h, CONTENT_B, NEIGHBOUR)).status_code == 302
        await trio.testing.wait_all_tasks_blocked()
        assert h.engine.requests["open"] == 2
        # Once A's session is open, the address may open the next one.
        await trio.sleep_until(5.0)
        await trio.testing.wait_all_tasks_blocked()
        assert h.channel(CONTENT_A).session is not None
        assert (await _getstream(h, CONTENT_C, HOME)).status_code == 302
        assert trio.current_time() == 5.0


async def test_zero_means_no_cap(autojump_clock: trio.testing.MockClock) -> None:
    config = default_config(
        trusted_proxies=LOOPBACK_PROXY,
        max_players_per_address=0,
        max_channels_per_address=0,
        max_opening_per_address=0,
        max_streams_per_engine=10,
    )
    async with harness(config) as h:
        for key in (CONTENT_A, CONTENT_B, CONTENT_C, CONTENT_D):
            assert (await _getstream(h, key, HOME)).status_code == 302
        for _ in range(40):
            assert (await _play(h, CONTENT_A, HOME)).status_code == 200


def _ts(h: Harness, key: str, peer: str) -> TsClient:
    """An MPEG-TS player of ``key`` connecting from ``peer``."""
    return TsClient(h.app, "/ace/getstream", f"id={key}&format=ts", peer=peer)


async def test_ts_players_are_held_to_the_same_address_caps(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = default_config(
        max_channels_per_address=2, max_players_per_address=3, max_streams_per_engine=10
    )
    async with harness(config) as h, trio.open_nursery() as nursery:
        players = [_ts(h, key, HOME) for key in (CONTENT_A, CONTENT_B)]
        for player in players:
            nursery.start_soon(player.run)
            await player.started.wait()
            assert player.status == 200
        # A third id over TS from the same address starts nothing.
        third = _ts(h, CONTENT_C, HOME)
        await third.run()
        assert third.status == 503
        assert b"TRIOPROXY_MAX_CHANNELS_PER_ADDRESS" in third.body
        assert h.registry.get(CONTENT_C) is None
        # TS players count among the address's players, as HLS players do: one more of either
        # kind fits, then neither.
        players.append(_ts(h, CONTENT_A, HOME))
        nursery.start_soon(players[-1].run)
        await players[-1].started.wait()
        assert players[-1].status == 200
        fourth = _ts(h, CONTENT_B, HOME)
        await fourth.run()
        assert fourth.status == 503
        assert b"TRIOPROXY_MAX_PLAYERS_PER_ADDRESS" in fourth.body
        refused = await h.client.get(
            f"/ace/hls/{CONTENT_A}/index.m3u8", headers={"X-Forwarded-For": HOME}
        )
        assert refused.status_code == 200  # the harness's own peer is not HOME
        neighbour = _ts(h, CONTENT_C, NEIGHBOUR)
        nursery.start_soon(neighbour.run)
        await neighbour.started.wait()
        assert neighbour.status == 200
        # A player that leaves frees its slot at once.
        players[0].leave()
        await trio.testing.wait_all_tasks_blocked()
        again = _ts(h, CONTENT_B, HOME)
        nursery.start_soon(again.run)
        await again.started.wait()
        assert again.status == 200
        for player in (*players, neighbour, again):
            player.leave()


async def test_sources_are_held_to_the_address_caps(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = origin_config(
        sources=(("news", FEED), ("sport", FEED)),
        trusted_proxies=LOOPBACK_PROXY,
        max_channels_per_address=1,
    )
    async with harness(config, origin=news_origin()) as h:
        first = await h.client.get("/sources/news.m3u8", headers=_headers(HOME))
        assert first.status_code == 302
        for path in ("/sources/sport.m3u8", "/sources/sport.ts"):
            refused = await h.client.get(path, headers=_headers(HOME))
            assert refused.status_code == 503, path
            assert "TRIOPROXY_MAX_CHANNELS_PER_ADDRESS" in refused.json()["message"]
        assert h.registry.get("source/sport") is None
        assert (await h.client.get("/sources/sport.m3u8", headers=_headers(NEIGHBOUR))).is_redirect
