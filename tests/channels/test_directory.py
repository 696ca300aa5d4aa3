"""Engine choice: fewest channels, forwarded first on ties, never above the cap."""

from __future__ import annotations

import logging

import httpx
import pytest
import trio
import trio.testing

from trioproxy.channels.directory import EngineDirectory, parse_engines
from trioproxy.errors import NoEngineAvailable
from trioproxy.testing.harness import ORCHESTRATOR_URL, asgi_transport
from trioproxy.testing.orchestrator import FakeOrchestrator
from trioproxy.upstream.orchestrator import Orchestrator


def test_least_loaded_engine_and_load_counted_at_once() -> None:
    directory = EngineDirectory(static=("http://a:1", "http://b:1"), max_streams_per_engine=2)
    picks = [directory.acquire().base_url for _ in range(4)]
    # A burst of four new channels spreads across both engines before any session is open.
    assert sorted(picks) == ["http://a:1", "http://a:1", "http://b:1", "http://b:1"]
    with pytest.raises(NoEngineAvailable) as caught:
        directory.acquire()
    assert caught.value.retry_after
    directory.release(directory.engines[1])
    assert directory.acquire().base_url == "http://b:1"


async def test_orchestrator_engines_healthy_only_forwarded_first() -> None:
    rows: list[object] = [
        {
            "container_id": "c1",
            "host": "10.0.0.1",
            "port": 6878,
            "forwarded": False,
            "health_status": "healthy",
        },
        {
            "container_id": "c2",
            "host": "10.0.0.2",
            "port": 6878,
            "forwarded": True,
            "health_status": "healthy",
        },
        {"container_id": "c3", "host": "10.0.0.3", "port": 6878, "health_status": "unhealthy"},
        {"container_id": "c4", "host": "::1", "port": 6878, "health_status": "healthy"},
        {"container_id": "c5", "host": "x", "port": "6878", "health_status": "healthy"},
        "garbage",
    ]
    engines = parse_engines(rows)
    assert [e.container_id for e in engines] == ["c1", "c2", "c4"]
    assert engines[2].base_url == "http://[::1]:6878"
    orchestrator = FakeOrchestrator(engines=rows)
    async with httpx.AsyncClient(transport=asgi_transport(orchestrator)) as http:
        directory = EngineDirectory(
            static=(),
            max_streams_per_engine=1,
            orchestrator=Orchestrator(http, ORCHESTRATOR_URL, None),
        )
        await directory.refresh()
    assert directory.engines == engines
    assert directory.acquire().container_id == "c2"  # forwarded wins the tie
    assert directory.acquire().container_id == "c1"


def test_no_engines_known_says_why() -> None:
    directory = EngineDirectory(static=(), max_streams_per_engine=3)
    with pytest.raises(NoEngineAvailable, match="no engine"):
        directory.acquire()


V2_ROWS = [
    {"container_id": "c1", "host": "10.0.0.1", "port": 6878, "health_status": "healthy"},
    {
        "container_id": "c2",
        "host": "10.0.0.2",
        "port": 6878,
        "health_status": "healthy",
        "draining": True,
    },
]


def v2_orchestrator(api_key: str | None, seen: list[httpx.Request]) -> Orchestrator:
    """v2 on port 8083: ``{"engines": [...]}``, and a key on every request, GETs included."""

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.headers.get("x-api-key") != "k3y":
            return httpx.Response(401, json={"error": "unauthorized"})
        return httpx.Response(200, json={"engines": V2_ROWS, "total": 2})

    http = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    return Orchestrator(http, "http://orchestrator.test:8083", api_key)


async def test_engines_from_a_v2_orchestrator_go_through_the_client() -> None:
    seen: list[httpx.Request] = []
    orchestrator = v2_orchestrator("k3y", seen)
    directory = EngineDirectory(static=(), max_streams_per_engine=3, orchestrator=orchestrator)
    await directory.refresh()
    assert [e.container_id for e in directory.engines] == ["c1"]  # c2 is draining
    assert directory.last_refresh_error is None
    assert orchestrator.api == "v2"
    (request,) = seen
    assert request.headers["authorization"] == "Bearer k3y"


async def test_a_v2_engine_list_without_our_key_is_one_error_and_says_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[httpx.Request] = []
    directory = EngineDirectory(
        static=(), max_streams_per_engine=3, orchestrator=v2_orchestrator(None, seen)
    )
    for _ in range(3):
        await directory.refresh()
    assert len(seen) == 3
    assert directory.engines == []
    with pytest.raises(NoEngineAvailable, match="HTTP 401"):
        directory.acquire()
    problems = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(problems) == 1
    assert "API_KEY is not set" in problems[0].getMessage()


ROW_A = {"container_id": "a", "host": "10.0.0.1", "port": 6878, "health_status": "healthy"}
ROW_B = {"container_id": "b", "host": "10.0.0.2", "port": 6878, "health_status": "healthy"}


async def test_an_empty_list_keeps_the_last_engines_for_new_channels_for_three_refreshes(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    orchestrator = FakeOrchestrator(engines=[ROW_A])
    async with httpx.AsyncClient(transport=asgi_transport(orchestrator)) as http:
        directory = EngineDirectory(
            static=(),
            max_streams_per_engine=5,
            orchestrator=Orchestrator(http, ORCHESTRATOR_URL, None),
            refresh_interval=10.0,
        )
        async with trio.open_nursery() as nursery:
            nursery.start_soon(directory.run)
            await trio.sleep(1.0)  # read at 0 s
            orchestrator.engines = []  # the orchestrator restarts: empty from the read at 10 s
            for now in (11.0, 21.0, 31.0):
                await trio.sleep_until(now)
                assert directory.acquire().container_id == "a"
            await trio.sleep_until(41.0)  # listed nothing for 30 s: no engine for new channels
            with pytest.raises(NoEngineAvailable, match="lists no healthy engine"):
                directory.acquire()
            orchestrator.engines = [ROW_B]
            await trio.sleep_until(51.0)
            assert directory.acquire().container_id == "b"
            nursery.cancel_scope.cancel()
    said = [r.getMessage() for r in caplog.records if r.name == "trioproxy.channels.directory"]
    assert [m for m in said if "no healthy engine" in m] == [
        "the orchestrator lists no healthy engine; running channels stay on their engines, "
        "and new channels get the last list (1 engine(s)) for 30 s",
        "the orchestrator has listed no healthy engine for 30 s; new channels get no engine "
        "until it lists one",
    ]


async def test_an_engine_is_unlisted_only_after_three_refreshes_without_it_beside_others(
    autojump_clock: trio.testing.MockClock,
) -> None:
    orchestrator = FakeOrchestrator(engines=[ROW_A, ROW_B])
    async with httpx.AsyncClient(transport=asgi_transport(orchestrator)) as http:
        directory = EngineDirectory(
            static=(),
            max_streams_per_engine=1,
            orchestrator=Orchestrator(http, ORCHESTRATOR_URL, None),
            refresh_interval=10.0,
        )
        async with trio.open_nursery() as nursery:
            nursery.start_soon(directory.run)
            await trio.sleep(1.0)
            engine = directory.acquire()
            assert engine.container_id == "a"
            gone_at: list[float] = []

            async def watch() -> None:
                await directory.wait_unlisted(engine)
                gone_at.append(trio.current_time())

            nursery.start_soon(watch)
            # Left out once (a health probe timed out), then an empty list: no move.
            orchestrator.engines = [ROW_B]
            await trio.sleep_until(15.0)
            orchestrator.engines = []
            await trio.sleep_until(45.0)
            orchestrator.engines = [ROW_A, ROW_B]
            await trio.sleep_until(55.0)
            assert gone_at == []
            # Left out while B is listed, from the read at 60 s: gone at the read at 90 s.
            orchestrator.engines = [ROW_B]
            await trio.sleep_until(200.0)
            assert gone_at == [90.0]
            nursery.cancel_scope.cancel()
