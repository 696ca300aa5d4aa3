"""Engine choice: fewest channels, forwarded first on ties, never above the cap."""

from __future__ import annotations

import httpx
import pytest

from trioproxy.channels.directory import EngineDirectory, parse_engines
from trioproxy.errors import NoEngineAvailable
from trioproxy.testing.harness import ORCHESTRATOR_URL, asgi_transport
from trioproxy.testing.orchestrator import FakeOrchestrator


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
            static=(), max_streams_per_engine=1, orchestrator_url=ORCHESTRATOR_URL, http=http
        )
        await directory.refresh()
    assert directory.engines == engines
    assert directory.acquire().container_id == "c2"  # forwarded wins the tie
    assert directory.acquire().container_id == "c1"


def test_no_engines_known_says_why() -> None:
    directory = EngineDirectory(static=(), max_streams_per_engine=3)
    with pytest.raises(NoEngineAvailable, match="no engine"):
        directory.acquire()
