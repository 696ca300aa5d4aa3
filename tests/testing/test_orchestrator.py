"""The fake orchestrator: the v1 wire of CONTRACT §2, its books, and its failure knobs."""

from __future__ import annotations

import random
from typing import Any

import httpx
import trio
import trio.testing

from trioproxy.testing.harness import ORCHESTRATOR_URL, asgi_transport
from trioproxy.testing.orchestrator import FakeOrchestrator


def started(key: str, session: str, container: str | None, stream_id: str | None) -> Any:
    labels = {"source": "trioproxy", "stream_mode": "HLS"}
    if stream_id is not None:
        labels["stream_id"] = stream_id
    return {
        "container_id": container,
        "engine": {"host": "e", "port": 6878},
        "stream": {"key_type": "content_id", "key": key},
        "session": {"playback_session_id": session, "stat_url": "s", "command_url": "c"},
        "labels": labels,
    }


def client(orchestrator: FakeOrchestrator, key: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return httpx.AsyncClient(
        transport=asgi_transport(orchestrator), base_url=ORCHESTRATOR_URL, headers=headers
    )


async def test_the_key_is_checked_except_for_engines() -> None:
    orchestrator = FakeOrchestrator(api_key="right", engines=[{"container_id": "c1"}])
    body = started("k", "s", "c1", "k|s")
    async with client(orchestrator) as none, client(orchestrator, "wrong") as wrong:
        assert (await none.post("/events/stream_started", json=body)).status_code == 401
        assert (await wrong.post("/events/stream_started", json=body)).status_code == 403
        assert (await wrong.get("/streams", params={"status": "started"})).status_code == 403
        assert (await none.get("/looping-streams")).status_code == 401
        engines = await none.get("/engines")
        assert engines.status_code == 200
        assert engines.json() == [{"container_id": "c1"}]
    assert orchestrator.attempts == 2
    assert orchestrator.list_reads == 2
    assert orchestrator.events == []


async def test_books_balance() -> None:
    orchestrator = FakeOrchestrator()
    async with client(orchestrator) as http:
        one = await http.post("/events/stream_started", json=started("k1", "s1", "c1", "mine"))
        assert one.json()["id"] == "mine"
        two = await http.post("/events/stream_started", json=started("k2", "s2", "c1", None))
        assert two.json()["id"] == "k2|s2"  # no stream_id label: the orchestrator names it
        await http.post("/events/stream_started", json=started("k3", "s3", "c2", "three"))
        assert orchestrator.per_container() == {"c1": 2, "c2": 1}
        ended = await http.post(
            "/events/stream_ended", json={"container_id": "c1", "stream_id": "mine", "reason": "r"}
        )
        assert ended.json()["updated"] is True
        unknown = await http.post("/events/stream_ended", json={"stream_id": "nobody"})
        assert unknown.json() == {"updated": False, "stream": None}
        assert (await http.post("/events/stream_ended", json={"reason": "r"})).status_code == 422
        assert orchestrator.end_one(random.Random(1)) in ("k2|s2", "three")
        running = await http.get("/streams", params={"status": "started"})
        everything = await http.get("/streams")
    assert len(running.json()) == 1
    assert {row["id"] for row in everything.json()} == {"mine", "k2|s2", "three"}
    assert orchestrator.kinds() == ["stream_started"] * 3 + ["stream_ended"] * 2
    assert orchestrator.ended_reasons() == ["r", ""]
    assert orchestrator.started == {"mine": 1, "k2|s2": 1, "three": 1}
    assert orchestrator.ended == {"mine": 1}
    assert orchestrator.ended_unknown == ["nobody"]
    assert len(orchestrator.ended_here) == 1
    assert orchestrator.streams["mine"].reason == "r"


async def test_delays_and_failures(autojump_clock: trio.testing.MockClock) -> None:
    orchestrator = FakeOrchestrator(delay=5.0, delays={"stream_ended": 1.0}, looping=["x"])

    async def start() -> None:
        await http.post("/events/stream_started", json=started("k", "s", None, "i"))

    async with client(orchestrator) as http, trio.open_nursery() as nursery:
        nursery.start_soon(start)
        await trio.sleep(1.0)
        assert orchestrator.in_flight == 1
        await http.post("/events/stream_ended", json={"stream_id": "i"})
        assert trio.current_time() == 2.0
    assert [(e.kind, e.arrived, e.at) for e in orchestrator.events] == [
        ("stream_ended", 1.0, 2.0),
        ("stream_started", 0.0, 5.0),
    ]
    assert orchestrator.ended_unknown == ["i"]  # its end overtook its start
    orchestrator.delay = orchestrator.delays["stream_ended"] = 0.0
    async with client(orchestrator) as http:
        assert (await http.get("/looping-streams")).json() == {"stream_ids": ["x"]}
        orchestrator.list_body = b"<html>oops"
        assert (await http.get("/looping-streams")).content == b"<html>oops"
        orchestrator.list_status = 503
        assert (await http.get("/streams")).status_code == 503
        orchestrator.status = 500
        assert (await http.post("/events/stream_ended", json={})).status_code == 500
        assert (await http.get("/nothing")).status_code == 404
    assert len(orchestrator.events) == 2
