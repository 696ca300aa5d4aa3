"""The control API without a key, the start-up line about it, and what callers without the key
see of engine sessions: no session ids in ``/proxy/status``, no engine URLs in error messages."""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

import pytest
import trio
import trio.testing

from trioproxy.config import load_config
from trioproxy.errors import ChannelFailed, redact
from trioproxy.http.guards import Access, is_loopback, is_loopback_bind, log_access
from trioproxy.testing.harness import CONTENT_A, ENGINE_URL, Harness, default_config, harness

KEY = "s3cret-key-for-tests-0123456789"
OUTSIDE = {"X-Forwarded-For": "203.0.113.7"}
"""A client beyond loopback, believed when the harness's peer (127.0.0.1) is a trusted proxy."""
LOOPBACK_PROXY = (ipaddress.ip_network("127.0.0.0/8"),)


def test_loopback_binds() -> None:
    for bind in ("127.0.0.1:8000", "127.3.2.1:80", "[::1]:8000", "localhost:8000"):
        assert is_loopback_bind(bind), bind
    for bind in ("0.0.0.0:8000", "[::]:8000", "192.168.1.10:8000", "proxy.example:80", ":80"):
        assert not is_loopback_bind(bind), bind
    assert is_loopback("127.0.0.1")
    assert is_loopback("::1")
    assert is_loopback("::ffff:127.0.0.1")
    assert not is_loopback("203.0.113.7")
    assert not is_loopback("")
    assert not is_loopback("garbage")


def test_access_rules() -> None:
    def rule(**changes: Any) -> str:
        return Access.of(default_config(**changes)).rule

    assert rule(api_key=KEY, bind="0.0.0.0:8000") == "key"
    assert rule(bind="127.0.0.1:8000") == "loopback"
    assert rule(bind="0.0.0.0:8000") == "closed"
    assert rule(bind="0.0.0.0:8000", open_control=True) == "open"
    assert load_config({"TRIOPROXY_OPEN_CONTROL": "1"}).open_control is True
    assert load_config({"TRIOPROXY_OPEN_CONTROL": "off"}).open_control is False


async def test_no_key_beyond_loopback_refuses_state_changes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness(default_config(bind="0.0.0.0:8000")) as h:
        await h.start()
        refused = await h.client.delete(f"/proxy/channels/{CONTENT_A}")
        assert refused.status_code == 403
        assert refused.json()["error"] == "forbidden"
        assert "API_KEY" in refused.json()["message"]
        assert "TRIOPROXY_OPEN_CONTROL" in refused.json()["message"]
        for method in ("POST", "PUT", "PATCH"):
            assert (await h.client.request(method, "/proxy/status")).status_code == 403
        assert h.registry.get(CONTENT_A) is not None
        # Players and reads are not the control API.
        assert (await h.client.get("/proxy/status")).status_code == 200
        assert (await h.client.get(await h.start())).status_code == 200


async def test_opting_in_opens_the_control_api(autojump_clock: trio.testing.MockClock) -> None:
    async with harness(default_config(bind="0.0.0.0:8000", open_control=True)) as h:
        await h.start()
        response = await h.client.delete(f"/proxy/channels/{CONTENT_A}", headers=OUTSIDE)
        assert response.status_code == 202
        assert h.registry.get(CONTENT_A) is None


async def test_loopback_bind_answers_loopback_clients_only(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Bound to loopback behind a reverse proxy that forwards a client from elsewhere.
    config = default_config(bind="127.0.0.1:8000", trusted_proxies=LOOPBACK_PROXY)
    async with harness(config) as h:
        await h.start()
        path = f"/proxy/channels/{CONTENT_A}"
        refused = await h.client.delete(path, headers=OUTSIDE)
        assert refused.status_code == 403
        assert "API_KEY" in refused.json()["message"]
        assert h.registry.get(CONTENT_A) is not None
        assert (await h.client.delete(path)).status_code == 202


@pytest.mark.parametrize(
    "relayed",
    [{"X-Forwarded-For": "203.0.113.9"}, {"X-Real-IP": "203.0.113.9"}, {"Forwarded": "for=x"}],
)
async def test_a_request_relayed_by_an_untrusted_proxy_is_not_local(
    autojump_clock: trio.testing.MockClock, relayed: dict[str, str]
) -> None:
    """nginx on the same host, not named in TRIOPROXY_TRUSTED_PROXIES: its peer is loopback, but
    the client it relays is not."""
    async with harness(default_config(bind="127.0.0.1:8000")) as h:
        await h.start()
        path = f"/proxy/channels/{CONTENT_A}"
        refused = await h.client.delete(path, headers=relayed)
        assert refused.status_code == 403
        assert h.registry.get(CONTENT_A) is not None
        status = (await h.client.get("/proxy/status", headers=relayed)).json()
        assert status["redacted"] is True
        assert (await h.client.delete(path)).status_code == 202


@pytest.mark.parametrize(
    ("changes", "level", "says", "open_streams"),
    [
        ({"api_key": KEY, "bind": "0.0.0.0:8000"}, logging.INFO, "API_KEY set", True),
        ({"bind": "127.0.0.1:8000"}, logging.INFO, "loopback only", False),
        ({"bind": "0.0.0.0:8000", "open_control": True}, logging.WARNING, "OPEN_CONTROL", True),
        ({"bind": "[::]:8000"}, logging.WARNING, "closed (403)", True),
    ],
)
def test_start_up_says_which_rule_holds(
    caplog: pytest.LogCaptureFixture,
    changes: dict[str, Any],
    level: int,
    says: str,
    open_streams: bool,
) -> None:
    caplog.set_level(logging.INFO, logger="trioproxy.http.guards")
    log_access(default_config(**changes))
    control = [r for r in caplog.records if r.getMessage().startswith("control API")]
    assert len(control) == 1
    assert control[0].levelno == level
    assert says in control[0].getMessage()
    streams = [r for r in caplog.records if "stream URLs are open" in r.getMessage()]
    assert len(streams) == (1 if open_streams else 0)
    assert KEY not in caplog.text


# ---- what callers without the key see -------------------------------------------------------


async def _status(h: Harness, **headers: str) -> dict[str, Any]:
    response = await h.client.get("/proxy/status", headers=headers)
    assert response.status_code == 200
    status: dict[str, Any] = response.json()
    return status


def _shows_session(status: dict[str, Any], session_id: str) -> bool:
    return session_id in str(status)


async def test_status_with_a_key_hides_sessions_from_callers_without_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness(default_config(api_key=KEY)) as h:
        await h.open_playlist()
        session_id = h.session_id()
        for headers in ({}, {"Authorization": "Bearer nope"}):
            status = await _status(h, **headers)
            assert status["redacted"] is True
            channel = status["channels"][0]
            assert channel["channel"] == CONTENT_A
            assert channel["state"] == "ready"
            assert "playback_session_id" not in channel
            assert "stream_id" not in channel
            assert not _shows_session(status, session_id)
        full = await _status(h, Authorization=f"Bearer {KEY}")
        assert full["redacted"] is False
        assert full["channels"][0]["playback_session_id"] == session_id
        assert full["channels"][0]["stream_id"] == f"{CONTENT_A}|{session_id}"


async def test_status_without_a_key_shows_sessions_to_loopback_clients_only(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = default_config(bind="0.0.0.0:8000", trusted_proxies=LOOPBACK_PROXY)
    async with harness(config) as h:
        await h.open_playlist()
        session_id = h.session_id()
        outside = await _status(h, **OUTSIDE)
        assert outside["redacted"] is True
        assert not _shows_session(outside, session_id)
        local = await _status(h)
        assert local["redacted"] is False
        assert local["channels"][0]["playback_session_id"] == session_id


async def test_player_errors_name_the_problem_and_host_without_urls_or_sessions(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    config = default_config(api_key=KEY)
    async with harness(config) as h:
        url = await h.start()
        assert (await h.client.get(url)).status_code == 200
        session_id = h.session_id()
        channel = h.channel()
        h.engine.faults["*"] = "segment_404"
        with trio.fail_after(60):
            while not channel.closed.is_set():
                await h.client.get(url)
                with trio.move_on_after(2.0):
                    await channel.closed.wait()
        after = await h.client.get(url)
        assert after.status_code == 502
        message = after.json()["message"]
        assert "engine segments failing" in message
        assert "HTTP 404" in message
        assert ENGINE_URL not in message
        assert "engine.test:6878" in message  # which engine: its host, never its URLs
        assert session_id not in message
        assert "/ace/" not in message
        closing = await _status(h)
        assert not _shows_session(closing, session_id)
    # The operator's log keeps the whole story.
    assert f"{ENGINE_URL}/ace/c/{session_id}/" in caplog.text


async def test_unreachable_engine_is_named_by_its_host_not_its_url(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        h.engine_transport.refusing = True
        response = await h.client.get(await h.start())
        assert response.status_code == 502
        message = response.json()["message"]
        assert "engine engine.test:6878 unreachable" in message
        assert "http" not in message
        assert "/ace/" not in message


def test_redact() -> None:
    host = "engine.test:6878"
    assert redact(f"engine {ENGINE_URL} answered HTTP 500") == f"engine {host} answered HTTP 500"
    assert redact(f"playlist at {ENGINE_URL}/ace/m/k/s.m3u8 is not UTF-8 text") == (
        f"playlist at {host} is not UTF-8 text"
    )
    assert redact(f"engine segments failing: {ENGINE_URL}/ace/c/s1/7.ts: truncated") == (
        f"engine segments failing: {host}: truncated"
    )
    assert redact("refused to fetch from http://evil.test:80/x?pid=s1: not a known engine") == (
        "refused to fetch from evil.test:80: not a known engine"
    )
    assert redact(f"404 Not Found for url '{ENGINE_URL}/x.ts'") == f"404 Not Found from {host}"
    assert redact("http://user:pw@evil.test/a: HTTP 500") == "evil.test: HTTP 500"
    assert redact("session s1 gone", "s1") == "session <redacted> gone"
    assert redact(f"{ENGINE_URL}/ace/c/s1/7.ts: HTTP 404", "s1") == f"{host}: HTTP 404"
    assert redact("no url here") == "no url here"
    assert ChannelFailed(f"engine {ENGINE_URL} unreachable").body() == {
        "error": "channel_failed",
        "message": f"engine {host} unreachable",
    }
