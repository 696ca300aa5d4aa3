"""One engine session per channel, however many players and reloads."""

from __future__ import annotations

import trio
import trio.testing

from trioproxy.testing.harness import CONTENT_A, default_config, harness
from trioproxy.testing.orchestrator import FakeOrchestrator


async def test_four_players_reloading_share_one_session(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        urls: list[str] = []

        async def player() -> None:
            first = await h.client.get("/ace/getstream", params={"id": CONTENT_A})
            assert first.status_code == 302
            url = first.headers["location"]
            urls.append(url)
            for _ in range(8):
                response = await h.client.get(url)
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("application/vnd.apple.mpegurl")
                await trio.sleep(2.0)

        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(player)

        assert len(h.sim.sessions) == 1
        assert h.orchestrator.kinds() == ["stream_started"]
        assert len(set(urls)) == 4  # each player got its own token ...
        channel = h.registry.get(CONTENT_A)
        assert channel is not None
        assert channel.clients.count(trio.current_time()) == 4  # ... and counts once


async def test_engines_come_from_the_orchestrator_when_none_are_configured(
    autojump_clock: trio.testing.MockClock,
) -> None:
    orchestrator = FakeOrchestrator(
        engines=[
            {
                "container_id": "sick",
                "host": "engine.test",
                "port": 6879,
                "forwarded": True,
                "health_status": "unhealthy",
            },
            {
                "container_id": "box-1",
                "host": "engine.test",
                "port": 6878,
                "forwarded": False,
                "health_status": "healthy",
            },
        ]
    )
    async with harness(default_config(engines=()), orchestrator=orchestrator) as h:
        await trio.sleep(0.1)
        assert (await h.open_playlist(CONTENT_A)).status_code == 200
        await trio.sleep(0.1)
        (started,) = h.orchestrator.events
        assert started.payload["container_id"] == "box-1"
        assert started.payload["engine"] == {"host": "engine.test", "port": 6878}
