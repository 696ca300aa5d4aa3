"""The status page at ``/`` as the app serves it, and the engine's peers and speed it shows
from ``/proxy/status``. The browser test is ``tests/e2e/test_status_page.py``."""

from __future__ import annotations

import base64
import hashlib
import re

import trio
import trio.testing

from trioproxy.channels.health import engine_stats
from trioproxy.testing.harness import default_config, harness


async def test_the_page_is_one_self_contained_html_file() -> None:
    async with harness() as h:
        response = await h.client.get("/")
        head = await h.client.head("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert head.status_code == 200
    html = response.text
    assert '<table id="channels">' in html
    # No external assets, no absolute URLs: it works under any path prefix.
    assert not re.search(r"""(src|href)=""", html)
    assert not re.search(r"""["'`]/(proxy|ace|sources)""", html)
    assert '"proxy/status"' in html
    assert '"proxy/channels/"' in html
    # Only its own inline script and style may run.
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "connect-src 'self'" in policy
    (script,) = re.findall(r"<script>(.*?)</script>", html, re.S)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in policy
    assert "unsafe-inline" not in policy


async def test_status_shows_the_engines_peers_and_speed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness(default_config(stat_interval=5.0)) as h:
        assert (await h.open_playlist()).status_code == 200
        before = (await h.client.get("/proxy/status")).json()["channels"][0]
        assert before["engine_stats"] is None
        await trio.sleep(6)
        after = (await h.client.get("/proxy/status")).json()["channels"][0]
    assert after["engine_stats"] == {"peers": 7, "speed_down": 400, "speed_up": 20}


def test_engine_stats_take_the_numbers_only() -> None:
    assert engine_stats({"response": {"peers": 3, "speed_down": "x", "status": "dl"}}) == {
        "peers": 3
    }
    assert engine_stats({"response": {"peers": True}}) == {}
    assert engine_stats({"response": None, "error": "gone"}) is None
    assert engine_stats(["not", "a", "dict"]) is None
