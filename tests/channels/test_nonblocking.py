"""A slow engine or a slow orchestrator only ever slows down its own channel."""

from __future__ import annotations

import trio
import trio.testing

from trioproxy.testing.engine import SimulatedEngine
from trioproxy.testing.harness import CONTENT_A, CONTENT_B, harness, small_media
from trioproxy.testing.orchestrator import FakeOrchestrator


async def test_slow_engine_and_orchestrator_block_nothing_else(
    autojump_clock: trio.testing.MockClock,
) -> None:
    engine = SimulatedEngine(small_media(), durations=[2.0], backlog=6.0, open_delay=3.0)
    orchestrator = FakeOrchestrator(delay=5.0)
    async with harness(engine=engine, orchestrator=orchestrator) as h:
        # Channel B is up and playing before the slow start begins.
        playing = await h.open_playlist(CONTENT_B)
        assert playing.status_code == 200
        segment_url = playing.text.splitlines()[-1]

        start_a: trio.Event = trio.Event()
        answered_a: list[float] = []

        async def start_channel_a() -> None:
            start_a.set()
            response = await h.open_playlist(CONTENT_A)
            assert response.status_code == 200
            answered_a.append(trio.current_time())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(start_channel_a)
            await start_a.wait()
            await trio.sleep(1.0)  # A's engine session is being opened now (it takes 3 s)
            channel_a = h.registry.get(CONTENT_A)
            assert channel_a is not None
            assert channel_a.session is None
            for _ in range(3):
                before = trio.current_time()
                for url in (
                    "/proxy/status",
                    "/healthz",
                    playing.request.url.raw_path.decode(),
                    segment_url,
                ):
                    response = await h.client.get(url)
                    assert response.status_code == 200, url
                    assert trio.current_time() == before, f"{url} waited on another channel"
                await trio.sleep(1.5)  # across the engine wait and into the orchestrator's

        # A itself was answered once its session was open and its segments buffered, and its
        # stream_started arrived in its own time.
        assert answered_a
        await trio.sleep(10)
        assert h.orchestrator.kinds() == ["stream_started", "stream_started"]
