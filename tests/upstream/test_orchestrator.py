"""The orchestrator client against v1 and both v2 surfaces (CONTRACT §2, §2b), over
``httpx.MockTransport``: answer shapes, auth headers, 401s, the missing loop list, payloads."""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from trioproxy.channels.events import EventSender
from trioproxy.upstream.engine import Engine, Session
from trioproxy.upstream.orchestrator import (
    ApiSetting,
    Event,
    Orchestrator,
    OrchestratorAuthError,
    OrchestratorError,
    api_of_list,
    ended_payload,
    parse_engines,
    parse_running,
    started_payload,
)

KEY = "s3cret-key"
CONTENT = "c" * 40
STREAM_ID = f"{CONTENT}|psid-1"
ENGINE_ROW: dict[str, Any] = {
    "container_id": "box-1",
    "host": "10.0.0.1",
    "port": 6878,
    "forwarded": False,
    "health_status": "healthy",
}
V2_ENGINE_ROW = {**ENGINE_ROW, "draining": False, "stream_count": 0, "total_peers": 3}


@dataclass
class Stub:
    """One orchestrator: ``v1``, ``v2`` (port 8083) or ``v2-proxy`` (port 8000, ``/api/v1``)."""

    kind: str = "v1"
    api_key: str | None = None
    engines: list[dict[str, Any]] = field(default_factory=lambda: [ENGINE_ROW])
    streams: list[dict[str, Any]] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    event_times: list[float] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return "http://orch.test:8000/api/v1" if self.kind == "v2-proxy" else "http://orch.test"

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path.removeprefix("/api/v1")
        if self.api_key is not None and (self.kind == "v2" or path.startswith("/events/")):
            given = request.headers.get("x-api-key") or request.headers.get(
                "authorization", ""
            ).removeprefix("Bearer ")
            if not given:
                return httpx.Response(401, json={"error": "unauthorized"})
            if given != self.api_key:
                return httpx.Response(401 if self.kind != "v1" else 403, json={"error": "no"})
        if path == "/engines":
            if self.kind == "v2":
                return httpx.Response(200, json={"engines": self.engines, "total": 1})
            return httpx.Response(200, json=self.engines)
        if path == "/streams":
            if self.kind == "v1":
                wanted = request.url.params.get("status")
                rows = [s for s in self.streams if wanted is None or s["status"] == wanted]
                return httpx.Response(200, json=rows)
            if self.kind == "v2":
                return httpx.Response(200, json={"streams": self.streams, "total": 1})
            return httpx.Response(200, json=self.streams)
        if path == "/looping-streams" and self.kind == "v1":
            return httpx.Response(200, json={"stream_ids": [CONTENT.upper()]})
        if path.startswith("/events/"):
            body = json.loads(request.content)
            self.events.append((path.removeprefix("/events/"), body))
            self.event_times.append(trio.current_time())
            if self.kind == "v2" and not body.get("content_id"):
                return httpx.Response(400, json={"error": "content_id required"})
            if self.kind == "v1":
                return httpx.Response(200, json={"id": body.get("labels", {}).get("stream_id")})
            return httpx.Response(200, json={"id": body.get("content_id"), "status": "started"})
        return httpx.Response(404, text="404 page not found\n")


def client(stub: Stub, api_key: str | None = None, api: ApiSetting = "auto") -> Orchestrator:
    http = httpx.AsyncClient(transport=httpx.MockTransport(stub.handle))
    return Orchestrator(http, stub.base_url, api_key, api)


def a_session() -> Session:
    return Session(
        playback_url="http://e/p.m3u8",
        stat_url="http://e/stat",
        command_url="http://e/cmd",
        playback_session_id="psid-1",
        is_live=1,
        pid="pid",
    )


def a_started_event() -> Event:
    engine = Engine("http://10.0.0.1:6878", container_id="box-1")
    payload = started_payload(
        engine=engine,
        key_type="content_id",
        key=CONTENT,
        session=a_session(),
        stream_id=STREAM_ID,
    )
    return Event("stream_started", STREAM_ID, payload)


# ---- pure parts ---------------------------------------------------------------------------------


def test_payloads_work_on_v1_and_both_v2_surfaces() -> None:
    started = a_started_event().payload
    assert started["content_id"] == CONTENT
    assert started["engine_id"] == "box-1"
    assert started["container_id"] == "box-1"
    assert started["stream"] == {"key_type": "content_id", "key": CONTENT}
    assert started["labels"]["stream_id"] == STREAM_ID
    ended = ended_payload(
        container_id="box-1", stream_id=STREAM_ID, content_id=CONTENT, reason="no players"
    )
    assert ended == {
        "container_id": "box-1",
        "stream_id": STREAM_ID,
        "content_id": CONTENT,
        "reason": "no players",
    }


def test_engine_lists_in_every_shape() -> None:
    draining = {**V2_ENGINE_ROW, "container_id": "box-2", "draining": True}
    for payload in ([ENGINE_ROW], {"engines": [V2_ENGINE_ROW, draining], "total": 2}):
        assert [e.container_id for e in parse_engines(payload)] == ["box-1"]
    with pytest.raises(OrchestratorError):
        parse_engines({"total": 0})
    assert api_of_list([ENGINE_ROW], "engines", under_api_v1=False) == "v1"
    assert api_of_list([], "engines", under_api_v1=False) == "v1"
    assert api_of_list([V2_ENGINE_ROW], "engines", under_api_v1=False) == "v2"
    assert api_of_list([ENGINE_ROW], "engines", under_api_v1=True) == "v2"
    assert api_of_list({"engines": [], "total": 0}, "engines", under_api_v1=False) == "v2"
    assert api_of_list("garbage", "engines", under_api_v1=False) is None


def test_running_streams_are_keyed_the_way_the_orchestrator_names_them() -> None:
    v1 = parse_running([{"id": STREAM_ID, "key": CONTENT, "status": "started"}], "v1")
    assert v1.lists(stream_id=STREAM_ID, content_id=CONTENT)
    assert not v1.lists(stream_id=f"{CONTENT}|other", content_id=CONTENT)
    rows = [
        {"id": CONTENT.upper(), "key": CONTENT.upper(), "status": "prebuf"},
        {"id": "d" * 40, "status": "allocating"},
        {"id": "e" * 40, "status": "pending_failover"},
        {"id": "f" * 40, "status": "ended"},
    ]
    for payload in (rows, {"streams": rows, "total": 4}):
        v2 = parse_running(payload, "v2")
        # v2 ignores ?status=: every status but an ended one still runs.
        assert v2.keys == {CONTENT, "d" * 40, "e" * 40}
        assert v2.lists(stream_id=STREAM_ID, content_id=CONTENT)
        assert not v2.lists(stream_id=None, content_id="f" * 40)
    with pytest.raises(OrchestratorError):
        parse_running([{"status": "started"}], "v1")


# ---- the client ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["v1", "v2", "v2-proxy"])
async def test_every_request_carries_both_key_headers(kind: str) -> None:
    stub = Stub(kind, api_key=KEY)
    orchestrator = client(stub, KEY)
    await orchestrator.detect()
    await orchestrator.engines()
    await orchestrator.running_streams()
    await orchestrator.looping_streams()
    assert await orchestrator.post_event(a_started_event()) == 200
    assert len(stub.requests) == (4 if kind == "v2-proxy" else 5)  # /api/v1 needs no probe
    for request in stub.requests:
        assert request.headers["authorization"] == f"Bearer {KEY}"
        assert request.headers["x-api-key"] == KEY


async def test_no_key_no_headers() -> None:
    stub = Stub("v1")
    await client(stub).engines()
    (request,) = stub.requests
    assert "authorization" not in request.headers
    assert "x-api-key" not in request.headers


@pytest.mark.parametrize(
    ("kind", "api"), [("v1", "v1"), ("v2", "v2"), ("v2-proxy", "v2")], ids=["v1", "v2", "proxy"]
)
async def test_the_api_is_found_and_logged_once(
    caplog: pytest.LogCaptureFixture, kind: str, api: str
) -> None:
    caplog.set_level(logging.INFO, logger="trioproxy.upstream.orchestrator")
    stub = Stub(kind, engines=[V2_ENGINE_ROW] if kind != "v1" else [ENGINE_ROW])
    orchestrator = client(stub)
    await orchestrator.detect()
    await orchestrator.detect()
    await orchestrator.engines()
    assert orchestrator.api == api
    assert orchestrator.detected
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1
    assert f"API {api}" in lines[0]


async def test_a_forced_api_is_used_whatever_the_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="trioproxy.upstream.orchestrator")
    stub = Stub("v2")
    orchestrator = client(stub, api="v1")
    await orchestrator.detect()
    await orchestrator.engines()  # a v2 answer: read, but the setting stays
    assert orchestrator.api == "v1"
    assert stub.requests[0].url.path == "/engines"
    assert "API v1 (TRIOPROXY_ORCHESTRATOR_API)" in caplog.text


async def test_an_unknown_api_is_learned_later_and_meanwhile_events_carry_both(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="trioproxy.upstream.orchestrator")
    stub = Stub("v2")
    failing = True

    def handle(request: httpx.Request) -> httpx.Response:
        if failing:
            raise httpx.ConnectError("refused", request=request)
        return stub.handle(request)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    orchestrator = Orchestrator(http, stub.base_url, None)
    await orchestrator.detect()
    assert orchestrator.api is None
    assert orchestrator.detected
    failing = False
    assert await orchestrator.post_event(a_started_event()) == 200
    assert stub.events[0][1]["content_id"] == CONTENT
    assert orchestrator.api == "v2"  # it named the stream by its content id
    assert "API not known yet" in caplog.text
    assert "orchestrator API: v2" in caplog.text


@pytest.mark.parametrize("kind", ["v1", "v2"])
async def test_streams_of_both_shapes(kind: str) -> None:
    stub = Stub(kind)
    stub.streams = [
        {"id": STREAM_ID if kind == "v1" else CONTENT, "key": CONTENT, "status": "started"},
        {"id": "f" * 40, "key": "f" * 40, "status": "ended"},
    ]
    orchestrator = client(stub)
    await orchestrator.detect()
    running = await orchestrator.running_streams()
    assert stub.requests[-1].url.params["status"] == "started"
    assert running.api == kind
    assert running.lists(stream_id=STREAM_ID, content_id=CONTENT)
    assert not running.lists(stream_id="f" * 40, content_id="f" * 40)


async def test_401_is_one_error_line_and_says_which_key(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="trioproxy")
    stub = Stub("v2", api_key=KEY)
    orchestrator = client(stub)  # API_KEY not set here
    for _ in range(3):
        with pytest.raises(OrchestratorAuthError) as caught:
            await orchestrator.engines()
        assert caught.value.status == 401
    with pytest.raises(OrchestratorAuthError):
        await orchestrator.running_streams()
    with pytest.raises(OrchestratorAuthError):
        await orchestrator.post_event(a_started_event())
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "HTTP 401" in errors[0]
    assert "API_KEY is not set" in errors[0]
    assert orchestrator.api == "v2"  # v1 never asks a key for /engines

    wrong = client(Stub("v2", api_key=KEY), "not-the-key")
    with pytest.raises(OrchestratorAuthError):
        await wrong.engines()
    assert "API_KEY is wrong" in caplog.text
    assert KEY not in caplog.text
    assert "not-the-key" not in caplog.text


async def test_no_loop_list_is_one_info_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    stub = Stub("v2")
    orchestrator = client(stub)
    for _ in range(5):
        assert await orchestrator.looping_streams() == frozenset()
    records = [r for r in caplog.records if r.name.startswith("trioproxy")]
    assert [r.levelno for r in records] == [logging.INFO]
    assert "no loop list" in records[0].getMessage()
    assert len(stub.requests) == 5
    assert await client(Stub("v1")).looping_streams() == {CONTENT}


async def test_other_failures_raise_orchestrator_error() -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/engines":
            return httpx.Response(200, content=b"{not json")
        if request.url.path == "/streams":
            return httpx.Response(503, json={"detail": "down"})
        raise httpx.ReadTimeout("slow", request=request)

    orchestrator = Orchestrator(
        httpx.AsyncClient(transport=httpx.MockTransport(broken)), "http://o", None
    )
    with pytest.raises(OrchestratorError, match="JSON"):
        await orchestrator.engines()
    with pytest.raises(OrchestratorError, match="HTTP 503") as caught:
        await orchestrator.running_streams()
    assert caught.value.status == 503
    with pytest.raises(OrchestratorError, match="ReadTimeout"):
        await orchestrator.looping_streams()
    assert orchestrator.api is None


NESTED = b"[" * 100_000


def answering(body: bytes) -> Orchestrator:
    """An orchestrator that answers every request with ``body`` (status 200)."""
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=body))
    return Orchestrator(httpx.AsyncClient(transport=transport), "http://o", None)


@pytest.mark.parametrize(
    "body",
    [
        NESTED,
        b'{"engines": ' + NESTED,
        b"{not json",
        b"\xff\xfe",
        b"null",
        b'"a string"',
        b'{"engines": null, "streams": {"a": 1}, "stream_ids": null}',
        json.dumps([["a list where an object goes"]]).encode(),
        json.dumps([{"id": None, "host": None}]).encode(),
    ],
    ids=lambda body: body[:16].decode(errors="replace"),
)
async def test_any_malformed_answer_is_an_orchestrator_error(body: bytes) -> None:
    orchestrator = answering(body)
    for read in (
        orchestrator.running_streams,
        orchestrator.looping_streams,
    ):
        with pytest.raises(OrchestratorError):
            await read()
    # A list of rows none of which is an engine is an empty list; anything else an error.
    with contextlib.suppress(OrchestratorError):
        assert await orchestrator.engines() == []


def test_engine_rows_of_the_wrong_types_are_skipped() -> None:
    rows: list[Any] = [
        {**ENGINE_ROW, "port": "6878"},
        {**ENGINE_ROW, "port": 70000},
        {**ENGINE_ROW, "port": 0},
        {**ENGINE_ROW, "port": True},
        {**ENGINE_ROW, "port": None},
        {**ENGINE_ROW, "port": 6878.0},
        {**ENGINE_ROW, "host": None},
        {**ENGINE_ROW, "host": ["10.0.0.1"]},
        {**ENGINE_ROW, "host": "10.0.0.1/x"},
        {**ENGINE_ROW, "host": "user@10.0.0.1"},
        {**ENGINE_ROW, "host": "two words"},
        {**ENGINE_ROW, "container_id": ["box"], "forwarded": {"yes": 1}},
    ]
    (engine,) = parse_engines(rows)
    assert engine.base_url == "http://10.0.0.1:6878"
    assert engine.container_id is None


async def test_a_deeply_nested_event_answer_counts_as_delivered() -> None:
    orchestrator = answering(NESTED)
    assert await orchestrator.post_event(a_started_event()) == 200
    assert orchestrator.api is None  # nothing learned from it


@pytest.mark.parametrize("kind", ["v1", "v2", "v2-proxy"])
async def test_the_event_sender_delivers_what_each_api_needs(
    autojump_clock: trio.testing.MockClock, kind: str
) -> None:
    stub = Stub(kind, api_key=KEY)
    orchestrator = client(stub, KEY)
    sender = EventSender(orchestrator, CONTENT)
    send, receive = trio.open_memory_channel[Event](4)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sender.run, receive)
        with send:
            sender.pending = 2
            await send.send(a_started_event())
            await trio.testing.wait_all_tasks_blocked()  # posted before its stream ends
            ended = ended_payload(
                container_id="box-1", stream_id=STREAM_ID, content_id=CONTENT, reason="stopped"
            )
            await send.send(Event("stream_ended", STREAM_ID, ended))
    # Events do not wait for the API to be known: one body serves every API.
    assert stub.event_times == [0, 0]
    assert sender.snapshot() == {"pending": 0, "delivered": 2, "dropped": 0}
    assert [name for name, _ in stub.events] == ["stream_started", "stream_ended"]
    started, ended_body = (body for _, body in stub.events)
    assert started["content_id"] == CONTENT
    assert started["engine_id"] == "box-1"
    assert ended_body == ended
