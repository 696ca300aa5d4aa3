"""One engine session per channel, however many players and reloads."""

from __future__ import annotations

import trio
import trio.testing

from .fakes import CONTENT_A, harness


async def test_four_players_reloading_share_one_session(autojump_clock: trio.testing.MockClock) -> None:
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

        assert len(h.engine.sessions) == 1
        assert h.orchestrator.kinds() == ["stream_started"]
        assert len(set(urls)) == 4  # each player got its own token ...
        channel = h.registry.get(CONTENT_A)
        assert channel is not None
        assert channel.clients.count(trio.current_time()) == 4  # ... and counts once
