"""The status page in headless Chromium against a running proxy (real sockets, real clock).

``tests/e2e/browser/status.mjs`` opens the page, waits until it lists the channels, and reports
what it shows; with an API key it presses Stop. Gated like the other browser tests
(``TRIOPROXY_BROWSER_TESTS=1``, ``nox -s browser``). With ``TRIOPROXY_SCREENSHOT=<file>`` the
first test also saves a screenshot of the page there (how ``docs/status-page.png`` is made).
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import trio
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope

from trioproxy.http.asgi import read_body, send_response, serve_lifespan
from trioproxy.testing.engine import SimulatedEngine, demo_media

from ..media import proxy_server, serve_asgi
from .test_browser import browser_config, check_tools, pytestmark, run_node

__all__ = ["pytestmark"]

API_KEY = "status-page-test-key"
CONTENT = ["a" * 40, "b" * 40]


async def status_page(url: str, count: int, api_key: str = "", shot: str = "") -> dict[str, Any]:
    """What the page at ``url`` lists once it shows ``count`` channels (or after 30 s)."""
    return await run_node("status.mjs", url, str(count), "30", shot, api_key)


async def start_channels(proxy_url: str) -> None:
    async with httpx.AsyncClient(base_url=proxy_url, follow_redirects=True, timeout=30) as client:
        for content in CONTENT:
            response = await client.get("/ace/getstream", params={"id": content})
            assert response.status_code == 200, response.text


class PrefixProxy:
    """A reverse proxy publishing ``upstream`` under ``/tv/`` (it strips the prefix)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if not scope["path"].startswith("/tv/"):
            await send_response(send, 404, [], b"not under /tv/")
            return
        body = await read_body(receive) or b""
        headers = [(k.decode(), v.decode()) for k, v in scope["headers"] if k != b"host"]
        query = scope["query_string"].decode()
        target = self.upstream + scope["path"].removeprefix("/tv") + (f"?{query}" if query else "")
        async with httpx.AsyncClient(timeout=30) as client:
            answer = await client.request(scope["method"], target, headers=headers, content=body)
        drop = {"content-length", "transfer-encoding", "connection", "content-encoding"}
        relayed = [(k.encode(), v.encode()) for k, v in answer.headers.items() if k not in drop]
        await send_response(send, answer.status_code, relayed, answer.content)


async def test_the_page_lists_what_status_lists_and_stops_a_channel() -> None:
    check_tools()
    engine = SimulatedEngine(demo_media(), durations=[2.0], backlog=8.0)
    async with serve_asgi(engine) as engine_url:
        config = browser_config(
            engine_url,
            # The channels outlive the page check: one request each, and Chromium may take
            # a while to start on a busy machine.
            hls_client_idle_timeout=300.0,
            proxy_grace_period=300.0,
            api_key=API_KEY,
            hls_initial_segments=1,
            stat_interval=0.5,
        )
        async with proxy_server(config) as proxy:
            await start_channels(proxy.url)
            for _ in range(100):  # the engine's stats read at least once (10 s at most)
                if all(c.feed.engine_stat for c in proxy.registry.channels):
                    break
                await trio.sleep(0.1)
            async with httpx.AsyncClient() as client:
                status = (await client.get(f"{proxy.url}/proxy/status")).json()
            listed = sorted(channel["channel"] for channel in status["channels"])
            assert listed == sorted(CONTENT)
            shot = os.environ.get("TRIOPROXY_SCREENSHOT", "")
            report = await status_page(f"{proxy.url}/", len(CONTENT), API_KEY, shot)
            running = sorted(channel.name for channel in proxy.registry.channels)
    assert report["errors"] == [], report
    assert sorted(report["channels"]) == listed, report
    assert report["engines"] == [engine_url], report
    assert "session details hidden" in report["updated"], report
    assert report["peers"] == ["7", "7"], report
    stopped = report["stopped"]
    assert stopped["channel"] in CONTENT, report
    assert stopped["message"] == f"stopping {stopped['channel']}", report
    assert stopped["channel"] not in stopped["remaining"], report
    assert running == sorted(set(CONTENT) - {stopped["channel"]})


async def test_the_page_works_under_a_path_prefix() -> None:
    check_tools()
    engine = SimulatedEngine(demo_media(), durations=[2.0], backlog=8.0)
    async with serve_asgi(engine) as engine_url:
        config = browser_config(
            engine_url,
            # The channels outlive the page check: one request each, and Chromium may take
            # a while to start on a busy machine.
            hls_client_idle_timeout=300.0,
            proxy_grace_period=300.0,
            hls_initial_segments=1,
        )
        async with proxy_server(config) as proxy, serve_asgi(PrefixProxy(proxy.url)) as front:
            await start_channels(proxy.url)
            report = await status_page(f"{front}/tv/", len(CONTENT))
            status_requests = proxy.requests.count("/proxy/status")
    assert report["errors"] == [], report
    assert sorted(report["channels"]) == sorted(CONTENT), report
    assert status_requests >= 1
