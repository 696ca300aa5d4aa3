"""The fake orchestrator's v2 wire (CONTRACT §2b): port 8083 and the proxy-plane ``/api/v1``."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from trioproxy.testing.harness import ORCHESTRATOR_URL, asgi_transport
from trioproxy.testing.orchestrator import PROXY_PLANE, FakeOrchestrator, V2Wire

ENGINES = [{"container_id": "c1", "host": "e1", "port": 6878, "health_status": "healthy"}]


def started(content: str | None, key: str, engine: str | None, session: str = "s") -> Any:
    """A ``stream_started`` as trioproxy sends it (``content`` None: v1's body alone)."""
    body: dict[str, Any] = {
        "container_id": engine,
        "engine": {"host": "e1", "port": 6878},
        "stream": {"key_type": "content_id", "key": key},
        "session": {"playback_session_id": session, "stat_url": "s", "command_url": "c"},
        "labels": {"source": "trioproxy", "stream_mode": "HLS", "stream_id": f"{key}|{session}"},
    }
    if content is not None:
        body |= {"content_id": content, "engine_id": engine}
    return body


def ended(content: str | None, stream_id: str | None = None) -> Any:
    body: dict[str, Any] = {"container_id": "c1", "reason": "r"}
    if content is not None:
        body["content_id"] = content
    if stream_id is not None:
        body["stream_id"] = stream_id
    return body


def client(
    orchestrator: FakeOrchestrator, base: str = ORCHESTRATOR_URL, **headers: str
) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=asgi_transport(orchestrator), base_url=base, headers=headers)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "wrong", "Authorization": "Bearer k"}],
)
async def test_8083_refuses_every_request_but_health_without_the_key(
    headers: dict[str, str],
) -> None:
    orchestrator = FakeOrchestrator(api_key="k", engines=ENGINES, wire=V2Wire())
    async with client(orchestrator, **headers) as http:
        for method, path in [
            ("GET", "/engines"),
            ("GET", "/streams"),
            ("GET", "/looping-streams"),
            ("GET", "/anything"),
            ("POST", "/events/stream_started"),
            ("POST", "/events/stream_ended"),
        ]:
            response = await http.request(method, path, json=started("a", "a", "c1"))
            assert (response.status_code, response.json()) == (401, {"error": "unauthorized"})
        health = await http.get("/health")
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert orchestrator.events == []
    assert [(r.kind, r.status) for r in orchestrator.refused] == [
        ("stream_started", 401),
        ("stream_ended", 401),
    ]


@pytest.mark.parametrize("headers", [{"X-API-Key": "k"}, {"Authorization": "Bearer k"}])
async def test_8083_takes_either_header(headers: dict[str, str]) -> None:
    orchestrator = FakeOrchestrator(api_key="k", engines=ENGINES, wire=V2Wire())
    async with client(orchestrator, **headers) as http:
        engines = await http.get("/engines")
        assert engines.status_code == 200
        assert engines.json() == {
            "engines": [{"draining": False, "stream_count": 0, **ENGINES[0]}],
            "total": 1,
        }
        assert (await http.get("/looping-streams")).status_code == 404  # v2 has no loop list


async def test_8083_needs_a_top_level_content_id() -> None:
    orchestrator = FakeOrchestrator(wire=V2Wire())
    async with client(orchestrator) as http:
        for path, body in [
            ("/events/stream_started", started(None, "a", "c1")),  # v1's body: stream.key only
            ("/events/stream_ended", ended(None, "a|s")),
        ]:
            response = await http.post(path, json=body)
            assert (response.status_code, response.json()) == (
                400,
                {"error": "content_id required"},
            )
    assert orchestrator.events == []
    assert [r.status for r in orchestrator.refused] == [400, 400]


async def test_streams_are_keyed_and_overwritten_by_content_and_the_count_leaks() -> None:
    orchestrator = FakeOrchestrator(engines=ENGINES, wire=V2Wire())
    async with client(orchestrator) as http:
        first = await http.post("/events/stream_started", json=started("a", "a", "c1", "s1"))
        assert first.json()["id"] == "a"
        await http.post("/events/stream_started", json=started("a", "a", "c1", "s2"))
        assert orchestrator.overwritten == ["a"]
        assert orchestrator.load == {"c1": 2}  # the first start's count is not given back
        listed = await http.get("/streams", params={"status": "started"})
        assert listed.json()["total"] == 1
        assert listed.json()["streams"][0]["playback_session_id"] == "s2"
        done = await http.post("/events/stream_ended", json=ended("a"))
        assert done.json() == {"status": "ended"}
        assert orchestrator.load == {"c1": 1}  # a leaked stream: never back to 0
        engines = await http.get("/engines")
        assert engines.json()["engines"][0]["stream_count"] == 1
        again = await http.post("/events/stream_ended", json=ended("a"))
        assert again.status_code == 200  # unknown: silently ignored
        everything = await http.get("/streams")  # ?status= or not, ended ones are gone
        assert everything.json() == {"streams": [], "total": 0}
    assert orchestrator.running == {}
    assert orchestrator.ended_unknown == ["a"]
    assert orchestrator.refused == []


async def test_load_is_counted_only_from_top_level_engine_id_or_container_id() -> None:
    orchestrator = FakeOrchestrator(wire=V2Wire(PROXY_PLANE))
    only_nested = started("a", "a", None)
    only_nested["engine"] = {"host": "e1", "port": 6878}
    by_container = started(None, "b", "c2")
    by_container["content_id"] = "b"
    async with client(orchestrator, f"{ORCHESTRATOR_URL}/api/v1") as http:
        await http.post("/events/stream_started", json=only_nested)
        await http.post("/events/stream_started", json=by_container)
        await http.post(
            "/events/stream_started", json={**started("c", "c", "c2"), "engine_id": "c3"}
        )
    assert orchestrator.load == {"c2": 1, "c3": 1}
    assert orchestrator.streams["a"].engine_id is None


async def test_proxy_plane_falls_back_to_stream_key_and_stream_id() -> None:
    orchestrator = FakeOrchestrator(api_key="k", engines=ENGINES, wire=V2Wire(PROXY_PLANE))
    async with client(orchestrator, f"{ORCHESTRATOR_URL}/api/v1") as http:  # no key: none asked
        one = await http.post("/events/stream_started", json=started(None, "a", "c1"))
        assert (one.status_code, one.json()["id"]) == (200, "a")  # content_id from stream.key
        await http.post("/events/stream_started", json=started("b", "b", "c1"))
        assert len((await http.get("/streams", params={"status": "started"})).json()) == 2
        # Our stream id is no content id: an end naming only it is ignored, and "a" runs on.
        ignored = await http.post("/events/stream_ended", json=ended(None, "a|s"))
        assert (ignored.status_code, ignored.json()) == (200, {"status": "ended"})
        by_id = await http.post("/events/stream_ended", json=ended(None, "b"))
        assert by_id.status_code == 200
        neither = await http.post("/events/stream_ended", json=ended(None))
        assert (neither.status_code, neither.json()) == (
            400,
            {"error": "content_id or stream_id required"},
        )
        assert (await http.get("/engines")).json() == [
            {"draining": False, "stream_count": 1, **ENGINES[0]}
        ]
        assert (await http.get("/looping-streams")).status_code == 404
    async with client(orchestrator) as outside:  # the surface lives under /api/v1 only
        assert (await outside.get("/engines")).status_code == 404
    assert sorted(orchestrator.running) == ["a"]
    assert orchestrator.load == {"c1": 1}
    assert orchestrator.ended_unknown == ["a|s"]
    assert [r.status for r in orchestrator.refused] == [400]
