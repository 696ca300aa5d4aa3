"""Bad input gets a 4xx JSON error, never a 500, and opens no engine session."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trioproxy.testing.engine import SimulatedEngine
from trioproxy.testing.harness import CONTENT_A, default_config, harness, small_media

BAD_STREAM_QUERIES = [
    "",
    "id=",
    "infohash=",
    "id=abc",
    "id=" + "a" * 39,
    "id=" + "a" * 41,
    "id=" + "a" * 5000,
    "id=" + "g" * 40,
    "id=" + "a" * 39 + "%0A",
    "id=" + "a" * 40 + "%0A",
    "id=%00" + "a" * 39,
    "id=" + "a" * 38 + "%C3%A9",
    "id=%FF%FE" + "a" * 38,
    f"id={CONTENT_A}&infohash={CONTENT_A}",
    "id=../../etc/passwd",
]

BAD_PATHS = [
    "/ace/hls/zzz/index.m3u8",
    f"/ace/hls/{CONTENT_A.upper()}/index.m3u8",
    f"/ace/hls/{CONTENT_A}/00000000/../x",
    f"/ace/hls/{CONTENT_A}/00000000/-1.ts",
    f"/ace/hls/{CONTENT_A}/00000000/99999999999999999999.ts",
    f"/ace/hls/{CONTENT_A}/00000000/0.ts",
    f"/ace/hls/{CONTENT_A}/00000000/%00.ts",
    f"/ace/hls/{CONTENT_A}/%00/0.ts",
    f"/ace/hls/{CONTENT_A}/x.ts",
    "/ace/hls/../../etc/passwd",
    "/nothing/here",
]


@pytest.mark.parametrize("query", BAD_STREAM_QUERIES)
@pytest.mark.parametrize("path", ["/ace/getstream", "/ace/manifest.m3u8"])
async def test_bad_stream_ids_are_400(
    autojump_clock: trio.testing.MockClock, path: str, query: str
) -> None:
    async with harness() as h:
        response = await h.client.get(f"{path}?{query}")
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/json"
        assert response.json()["error"] == "bad_request"
        assert response.json()["message"]
        assert h.sim.sessions == {}


@pytest.mark.parametrize("path", BAD_PATHS)
async def test_bad_paths_are_404(autojump_clock: trio.testing.MockClock, path: str) -> None:
    async with harness() as h:
        assert (await h.open_playlist(CONTENT_A)).status_code == 200
        response = await h.client.get(path)
        assert response.status_code == 404, response.text
        assert response.json()["error"] == "not_found"


async def test_wrong_methods_are_405_json(autojump_clock: trio.testing.MockClock) -> None:
    async with harness() as h:
        response = await h.client.post("/ace/getstream", params={"id": CONTENT_A})
        assert response.status_code == 405
        assert response.json()["error"] == "method_not_allowed"
        assert (await h.client.get(f"/proxy/channels/{CONTENT_A}")).status_code == 405
        assert (await h.client.delete(f"/proxy/channels/{'z' * 40}")).status_code == 404
        assert h.sim.sessions == {}


async def test_head_opens_no_session(autojump_clock: trio.testing.MockClock) -> None:
    async with harness() as h:
        response = await h.client.head("/ace/getstream", params={"id": CONTENT_A})
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/vnd.apple.mpegurl"
        assert h.sim.sessions == {}


async def test_engine_refusing_the_session_is_502_then_backed_off(
    autojump_clock: trio.testing.MockClock,
) -> None:
    engine = SimulatedEngine(small_media(), session_error="content not found")
    async with harness(default_config(failure_backoff=10.0), engine) as h:
        response = await h.open_playlist(CONTENT_A)
        assert response.status_code == 502
        assert "content not found" in response.json()["message"]
        assert len(h.sim.sessions) == 0
        # A player that keeps reloading does not hammer the engine: the id is refused a while.
        await trio.sleep(0.1)
        again = await h.client.get("/ace/getstream", params={"id": CONTENT_A})
        assert again.status_code == 502
        assert again.json()["error"] == "channel_failed"
        assert int(again.headers["retry-after"]) >= 1
        assert h.orchestrator.events == []  # no stream was established, so none is ended


async def test_unreachable_engine_is_502(autojump_clock: trio.testing.MockClock) -> None:
    config = default_config(engines=("http://unreachable.test:6878",))
    async with harness(config) as h:
        response = await h.open_playlist(CONTENT_A)
        assert response.status_code == 502
        assert response.json()["error"] == "channel_failed"


async def test_full_engines_answer_503_with_retry_after(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness(default_config(max_streams_per_engine=1)) as h:
        assert (await h.open_playlist(CONTENT_A)).status_code == 200
        response = await h.client.get("/ace/getstream", params={"id": "c" * 40})
        assert response.status_code == 503
        assert response.json()["error"] == "no_engine_available"
        assert "retry-after" in response.headers
        assert len(h.sim.sessions) == 1
