"""Security: the control key, the hosts the proxy fetches from, X-Forwarded-For, request limits."""

from __future__ import annotations

import ipaddress
import json
import logging
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from hypercorn.typing import HTTPScope

from trioproxy.config import ConfigError, load_config
from trioproxy.errors import Forbidden, Unauthorized, UpstreamRefused
from trioproxy.http.guards import check_bearer, client_address
from trioproxy.testing.engine import SimulatedEngine
from trioproxy.testing.harness import (
    CONTENT_A,
    ENGINE_URL,
    channel_tasks,
    default_config,
    harness,
    small_media,
)
from trioproxy.upstream.engine import Engine, Session
from trioproxy.upstream.policy import UpstreamPolicy

KEY = "s3cret-key-for-tests-0123456789"

# ---- the control key ----------------------------------------------------------------------


def test_check_bearer() -> None:
    check_bearer(None, None)  # no key configured: open
    with pytest.raises(Unauthorized):
        check_bearer(None, KEY)
    with pytest.raises(Unauthorized):
        check_bearer(f"Basic {KEY}", KEY)
    with pytest.raises(Forbidden):
        check_bearer("Bearer nope", KEY)
    check_bearer(f"Bearer {KEY}", KEY)
    check_bearer(f"bearer {KEY}", KEY)


async def test_state_changes_need_the_key_and_it_is_never_logged(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with harness(default_config(api_key=KEY)) as h:
        await h.start()
        path = f"/proxy/channels/{CONTENT_A}"
        assert (await h.client.delete(path)).status_code == 401
        wrong = await h.client.delete(path, headers={"Authorization": "Bearer " + KEY[:-1]})
        assert wrong.status_code == 403
        assert wrong.json()["error"] == "forbidden"
        # Any other state-changing method is guarded too, whatever the path.
        for method in ("POST", "PUT", "PATCH"):
            response = await h.client.request(method, "/proxy/status")
            assert response.status_code == 401
        assert h.registry.get(CONTENT_A) is not None
        ok = await h.client.delete(path, headers={"Authorization": f"Bearer {KEY}"})
        assert ok.status_code == 202
        assert h.registry.get(CONTENT_A) is None
        # Reading needs no key.
        assert (await h.client.get("/proxy/status")).status_code == 200
    assert KEY not in caplog.text
    assert all(KEY not in str(r.args) for r in caplog.records)
    assert KEY not in repr(default_config(api_key=KEY))


# ---- where the proxy fetches from ---------------------------------------------------------


class ElsewhereEngine(SimulatedEngine):
    """An engine that hands out URLs on another host: for the playlist, or for its segments."""

    def __init__(self, where: str) -> None:
        super().__init__(small_media(), durations=[2.0], backlog=6.0)
        self.where = where

    async def handle(
        self, path: str, query: dict[str, str], scope: HTTPScope
    ) -> tuple[int, str, bytes]:
        status, content_type, body = await super().handle(path, query, scope)
        if self.where == "playback_url" and path in ("/ace/manifest.m3u8", "/ace/getstream"):
            payload = json.loads(body)
            payload["response"]["playback_url"] = "http://evil.test/steal.m3u8"
            body = json.dumps(payload).encode()
        elif self.where == "segments" and path.startswith("/ace/m/"):
            body = body.replace(b"/ace/c/", b"http://evil.test:8080/ace/c/")
        return status, content_type, body


class CountingTransport(httpx.AsyncBaseTransport):
    def __init__(self) -> None:
        self.requests = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        await trio.lowlevel.checkpoint()
        return httpx.Response(200, content=b"#EXTM3U\n", request=request)


async def test_upstream_policy() -> None:
    async with httpx.AsyncClient() as http:
        policy = UpstreamPolicy(http, ["cdn.test", "other.test:8443", "[::2]:80"])
        engine = policy.for_engine(Engine("http://engine.test:6878"))
        assert engine.permits("http://engine.test:6878/ace/c/1.ts")
        assert engine.permits("http://ENGINE.test:6878/x")
        assert not engine.permits("http://engine.test:6879/x")  # same host, another port
        assert not engine.permits("http://evil.test/x")
        assert not engine.permits("file:///etc/passwd")
        assert not engine.permits("http://engine.test:99999/x")
        assert not engine.permits("not a url")
        assert engine.permits("https://cdn.test/any")
        assert engine.permits("http://other.test:8443/x")
        assert not engine.permits("http://other.test/x")
        assert engine.permits("http://[::2]/x")
        # One engine's channel does not reach another engine, known or not.
        assert not engine.permits("http://engine2.test:6878/ace/c/1.ts")
        v6 = policy.for_engine(Engine("http://[::1]:6878"))
        assert v6.permits("http://[::1]:6878/x")
        assert not v6.permits("http://engine.test:6878/x")
        # The allowed hosts are for every channel; a source's own host only for its channel.
        assert policy.permits("https://cdn.test/any")
        assert not policy.permits("http://engine.test:6878/x")
        assert UpstreamPolicy(http, ["*"]).permits("http://anything.test/x")
        assert not UpstreamPolicy(http, ["*"]).permits("http://anything.test/ace/getstream")


@pytest.mark.parametrize("where", ["playback_url", "segments"])
async def test_upstream_elsewhere_is_refused(
    autojump_clock: trio.testing.MockClock, where: str
) -> None:
    evil = CountingTransport()
    mounts: dict[str, httpx.AsyncBaseTransport] = {"all://evil.test": evil}
    async with harness(engine=ElsewhereEngine(where), mounts=mounts) as h:
        url = await h.start()
        response = await h.client.get(url)
        assert response.status_code == 502  # at once, with the reason
        assert "evil.test" in response.json()["message"]
        for channel in [*h.registry.channels, *h.registry.closing]:
            await channel.closed.wait()
        assert trio.current_time() < 1.0
        assert evil.requests == 0
        assert h.sim.open_sessions == []  # the session that pointed elsewhere was stopped
        assert channel_tasks(h.registry) == []
        after = await h.client.get(url)
        assert after.status_code == 502
        message = after.json()["message"]
        assert "evil.test" in message
        assert "TRIOPROXY_ALLOW_UPSTREAM_HOSTS" in message


async def test_allowed_upstream_host_is_fetched(autojump_clock: trio.testing.MockClock) -> None:
    evil = CountingTransport()
    mounts: dict[str, httpx.AsyncBaseTransport] = {"all://evil.test": evil}
    config = default_config(allow_upstream_hosts=("evil.test",))
    async with harness(config, ElsewhereEngine("playback_url"), mounts=mounts) as h:
        await h.client.get(await h.start())
        assert evil.requests >= 1
        assert h.registry.policy.permits("http://evil.test/steal.m3u8")
        assert not h.registry.policy.permits("http://evil.test.example/steal.m3u8")


async def test_redirects_are_checked_hop_by_hop() -> None:
    fetched: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        fetched.append(str(request.url))
        if request.url.host == "engine.test":
            return httpx.Response(302, headers={"Location": "http://evil.test/x.ts"})
        return httpx.Response(200, content=b"stolen")

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        client = UpstreamPolicy(http).for_engine(Engine(ENGINE_URL))
        with pytest.raises(UpstreamRefused, match=r"evil\.test"):
            await client.get_bytes(ENGINE_URL + "/ace/c/1.ts")
    assert fetched == [ENGINE_URL + "/ace/c/1.ts"]


def test_allow_upstream_hosts_setting() -> None:
    config = load_config({"TRIOPROXY_ALLOW_UPSTREAM_HOSTS": "cdn.test, Other.test:8443"})
    assert config.allow_upstream_hosts == ("cdn.test", "other.test:8443")
    with pytest.raises(ConfigError, match="TRIOPROXY_ALLOW_UPSTREAM_HOSTS"):
        load_config({"TRIOPROXY_ALLOW_UPSTREAM_HOSTS": "http://cdn.test/"})
    with pytest.raises(ConfigError, match="TRIOPROXY_TRUSTED_PROXIES"):
        load_config({"TRIOPROXY_TRUSTED_PROXIES": "10.0.0.0/8, nonsense"})


# ---- X-Forwarded-For ----------------------------------------------------------------------


def _nets(*items: str) -> tuple[Any, ...]:
    return tuple(ipaddress.ip_network(item) for item in items)


def test_forwarded_for_is_believed_only_from_trusted_proxies() -> None:
    trusted = _nets("10.0.0.0/8", "::1/128")
    assert client_address("203.0.113.9", "1.2.3.4", trusted) == "203.0.113.9"
    assert client_address("10.1.1.1", "1.2.3.4", trusted) == "1.2.3.4"
    # Read right to left, skipping trusted hops; a spoofed left part is ignored.
    assert client_address("10.1.1.1", "6.6.6.6, 1.2.3.4, 10.2.2.2", trusted) == "1.2.3.4"
    assert client_address("::1", "2001:db8::7", trusted) == "2001:db8::7"
    assert client_address("10.1.1.1", "garbage, 1.2.3.4", trusted) == "1.2.3.4"
    assert client_address("10.1.1.1", "1.2.3.4, garbage", trusted) == "10.1.1.1"
    assert client_address("10.1.1.1", "", trusted) == "10.1.1.1"
    assert client_address("10.1.1.1", "1.2.3.4", ()) == "10.1.1.1"


@pytest.mark.parametrize(("trusted", "clients"), [((), 1), (("127.0.0.0/8",), 2)])
async def test_forwarded_for_tells_players_apart_only_when_trusted(
    autojump_clock: trio.testing.MockClock, trusted: tuple[str, ...], clients: int
) -> None:
    config = default_config(trusted_proxies=_nets(*trusted))
    async with harness(config) as h:
        await h.start()
        playlist = f"/ace/hls/{CONTENT_A}/index.m3u8"  # no client token: identity by address
        for forwarded in ("198.51.100.1", "198.51.100.2"):
            response = await h.client.get(playlist, headers={"X-Forwarded-For": forwarded})
            assert response.status_code == 200
        assert h.channel().clients.count(trio.current_time()) == clients


async def test_unparseable_upstream_urls_are_refused_not_raised() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    async with httpx.AsyncClient(transport=transport) as http:
        client = UpstreamPolicy(http).for_engine(Engine(ENGINE_URL))
        assert not client.permits(ENGINE_URL + "/ace/c/s/1.ts\x1b")
        with pytest.raises(UpstreamRefused):
            await client.get_bytes(ENGINE_URL + "/ace/c/s/1.ts\x1b")
        session = Session(ENGINE_URL + "/m.m3u8", "", ENGINE_URL + "/cmd\x00", "s", 1, "p")
        with pytest.raises(UpstreamRefused):
            await client.stop_session(session)


def test_hypercorn_buffers_little_of_an_incomplete_request() -> None:
    from trioproxy.service import hypercorn_config

    config = hypercorn_config("127.0.0.1:0")
    assert config.h11_max_incomplete_size <= 16 * 1024
    assert config.h2_max_header_list_size <= 16 * 1024


async def test_a_source_reaches_only_its_own_host() -> None:
    async with httpx.AsyncClient() as http:
        policy = UpstreamPolicy(http, ["cdn2.test"])
        news = policy.for_source("https://cdn.test/live/news.m3u8")
        assert news.permits("https://cdn.test/live/seg1.ts")
        assert not news.permits("http://cdn.test/live/seg1.ts")  # another port
        assert news.permits("http://cdn2.test/seg.ts")  # allowed for all
        assert not news.permits(ENGINE_URL + "/ace/c/s/1.ts")  # no engine through a source
        assert not news.permits("http://[::5]:8080/seg.ts")  # nor another source's host
        v6 = policy.for_source("http://[::5]:8080/a.m3u8")
        assert v6.permits("http://[::5]:8080/seg.ts")
        assert not v6.permits("https://cdn.test/live/seg1.ts")
