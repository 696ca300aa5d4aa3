"""hls.js in headless Chromium plays what the proxy serves: real browser, real sockets, real clock.

The page (``tests/e2e/browser/page.html``, hls.js with its default settings) is served from one
origin and the playlist from the proxy on another, so CORS is exercised as in a real deployment.
``tests/e2e/browser/play.mjs`` drives Chromium with playwright-core and reports what the player did.

These run when ``TRIOPROXY_BROWSER_TESTS=1`` (``nox -s browser`` sets it, after installing
Chromium and the npm packages); then a missing Chromium or npm package fails instead of skipping.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest
import trio
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope

from trioproxy.channels.status import registry_status
from trioproxy.config import Config
from trioproxy.http.asgi import send_response, serve_lifespan
from trioproxy.testing.engine import SimulatedEngine, demo_media
from trioproxy.testing.engine_server import engine_servers

from ..media import (
    LiveKind,
    StaticOrigin,
    ffmpeg_live_hls,
    proxy_server,
    serve_asgi,
)

BROWSER = Path(__file__).parent / "browser"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ENABLED = os.environ.get("TRIOPROXY_BROWSER_TESTS") == "1"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not ENABLED, reason="set TRIOPROXY_BROWSER_TESTS=1 (nox -s browser)"),
]


def check_tools() -> None:
    missing = [
        what
        for what, present in [
            ("node", shutil.which("node") is not None),
            ("chromium", Path(CHROMIUM).exists()),
            ("tests/e2e/browser/node_modules", (BROWSER / "node_modules" / "hls.js").is_dir()),
        ]
        if not present
    ]
    assert not missing, f"the browser tests need: {', '.join(missing)}"


class PageServer:
    """Serves the player page and hls.js."""

    FILES: ClassVar[dict[str, tuple[Path, bytes]]] = {
        "/page.html": (BROWSER / "page.html", b"text/html"),
        "/hls.min.js": (BROWSER / "node_modules/hls.js/dist/hls.min.js", b"text/javascript"),
    }

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        found = self.FILES.get(scope["path"])
        if found is None:
            await send_response(send, 404, [], b"not found")
            return
        path, kind = found
        data = await trio.Path(path).read_bytes()
        await send_response(send, 200, [(b"content-type", kind)], data)


async def run_node(script: str, *args: str) -> dict[str, Any]:
    """Run ``script`` (in ``browser/``) with Chromium; the JSON report on its last stdout line."""
    result = await trio.run_process(
        ["node", script, *args],
        cwd=BROWSER,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env={**os.environ, "CHROMIUM": CHROMIUM},
    )
    lines = result.stdout.decode().strip().splitlines()
    assert lines, f"{script} printed nothing; stderr: {result.stderr.decode()[-2000:]}"
    report: dict[str, Any] = json.loads(lines[-1])
    return report


async def play(page: str, playlist: str, seconds: float, give_up: float) -> dict[str, Any]:
    """Play until ``seconds`` of media played or ``give_up`` seconds passed; the report."""
    return await run_node("play.mjs", page, playlist, str(seconds), str(give_up))


def browser_config(engine_url: str, **changes: Any) -> Config:
    values: dict[str, Any] = {
        "engines": (engine_url,),
        "bind": "127.0.0.1:0",
        "proxy_grace_period": 5.0,
        "hls_client_idle_timeout": 10.0,
    }
    values.update(changes)
    return Config(**values)


async def test_hlsjs_plays_a_live_channel() -> None:
    check_tools()
    engine = SimulatedEngine(demo_media(), durations=[2.0], backlog=8.0)
    async with serve_asgi(engine) as engine_url, serve_asgi(PageServer()) as pages:  # noqa: SIM117
        async with proxy_server(browser_config(engine_url)) as proxy:
            playlist = f"{proxy.url}/ace/getstream?id={'a' * 40}"
            report = await play(f"{pages}/page.html", playlist, seconds=10, give_up=40)
    assert report["fatal"] is None, report
    assert report["currentTime"] >= 10, report
    assert len(engine.sessions) == 1


async def test_hlsjs_starts_on_a_slow_engine() -> None:
    """The first segment exists only 20 s after the session opens; defaults, no user retry."""
    check_tools()
    engine = SimulatedEngine(demo_media(), durations=[2.0], prebuffer=20.0)
    async with serve_asgi(engine) as engine_url, serve_asgi(PageServer()) as pages:  # noqa: SIM117
        async with proxy_server(browser_config(engine_url)) as proxy:
            playlist = f"{proxy.url}/ace/getstream?id={'b' * 40}"
            report = await play(f"{pages}/page.html", playlist, seconds=4, give_up=60)
            manifest_requests = proxy.requests.count("/ace/getstream")
    assert report["fatal"] is None, report
    assert report["currentTime"] >= 4, report
    assert report["manifestAt"] >= 20, report
    # hls.js gave up on its first manifest request after 20 s and retried at once (a timeout,
    # not an error status); the retry joined the channel still buffering.
    assert manifest_requests >= 2
    assert len(engine.sessions) == 1, "a retried manifest request opened another session"


async def test_hlsjs_plays_a_ts_only_engine() -> None:
    """The engine plays MPEG-TS only (its HLS answers 404): hls.js plays the segments the proxy
    cuts from it, read over one engine connection."""
    check_tools()
    engine = SimulatedEngine(demo_media(), durations=[2.0], backlog=8.0, formats="ts")
    async with serve_asgi(engine) as engine_url, serve_asgi(PageServer()) as pages:  # noqa: SIM117
        async with proxy_server(browser_config(engine_url)) as proxy:
            playlist = f"{proxy.url}/ace/getstream?id={'e' * 40}"
            report = await play(f"{pages}/page.html", playlist, seconds=8, give_up=40)
    assert report["fatal"] is None, report
    assert report["currentTime"] >= 8, report
    (session,) = engine.sessions.values()
    assert session.stream.connections == 1
    assert session.segment_requests == {}  # the engine's HLS was never asked for


@pytest.mark.parametrize("kind", ["fmp4", "master"])
async def test_hlsjs_plays_a_live_ffmpeg_origin(kind: LiveKind, tmp_path: Path) -> None:
    """fMP4 with an init section, and a master playlist whose audio is a separate rendition."""
    check_tools()
    origin = StaticOrigin(tmp_path, "/hls/master.m3u8" if kind == "master" else "/hls/index.m3u8")
    async with ffmpeg_live_hls(tmp_path, kind), serve_asgi(origin) as origin_url:  # noqa: SIM117
        async with serve_asgi(PageServer()) as pages:
            async with proxy_server(browser_config(origin_url)) as proxy:
                playlist = f"{proxy.url}/ace/getstream?id={'c' * 40}"
                report = await play(f"{pages}/page.html", playlist, seconds=10, give_up=45)
    assert report["fatal"] is None, report
    assert report["currentTime"] >= 10, report
    if kind == "master":
        assert any(".r0/" in path for path in proxy.requests), "the audio rendition was not played"


async def timeline(page: str, playlist: str, seconds: float) -> dict[str, Any]:
    """Play for ``seconds``; the report, with the playback time sampled every 250 ms."""
    return await run_node("timeline.mjs", page, playlist, str(seconds))


async def test_hlsjs_plays_on_when_the_engine_is_killed_under_it() -> None:
    """The first engine's server stops mid-stream (connections refused); the channel moves to
    the second engine, and hls.js, on the same playlist URL, plays on."""
    check_tools()
    engines = [SimulatedEngine(demo_media(), durations=[2.0], backlog=8.0) for _ in range(2)]
    async with engine_servers(engines) as (a, b), serve_asgi(PageServer()) as pages:  # noqa: SIM117
        async with proxy_server(browser_config(a.url, engines=(a.url, b.url))) as proxy:
            playlist = f"{proxy.url}/ace/getstream?id={'d' * 40}"
            reports: list[dict[str, Any]] = []

            async def player() -> None:
                reports.append(await timeline(f"{pages}/page.html", playlist, seconds=36))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(player)
                with trio.fail_after(30):
                    while sum(path.endswith(".ts") for path in proxy.requests) < 3:  # noqa: ASYNC110
                        await trio.sleep(0.2)
                await trio.sleep(4.0)
                killed = time.time()  # the browser's samples are in Unix time
                await a.kill()
            (channel,) = registry_status(proxy.registry)["channels"]
    (report,) = reports
    assert report["fatal"] is None, report
    samples = report["samples"]
    at_kill = max((played for at, played in samples if at <= killed), default=0.0)
    assert at_kill > 0, report
    last = samples[-1][1]
    # Played on past the kill (over 20 s of wall time followed it): the new session's segments
    # played, after a discontinuity, from the same playlist URL.
    assert last >= at_kill + 12, (at_kill, last, report["errors"])
    assert channel["failovers"] == 1
    assert channel["engine"]["url"] == b.url
