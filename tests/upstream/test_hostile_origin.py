"""A hostile origin configured as a source: each attack ends its own channel (or has its
segments refused) with a reason that names the cause, other channels keep playing, and what was
read stays within the bounds.

The origin (:mod:`trioproxy.testing.hostile`) runs in memory behind a streaming transport, on
the autojump clock; the engine is the simulated one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from trioproxy.channels.channel import Channel
from trioproxy.channels.registry import Registry
from trioproxy.config import Config
from trioproxy.testing.engine import SimulatedEngine
from trioproxy.testing.harness import (
    CONTENT_A,
    ENGINE_URL,
    RefusingTransport,
    harness,
    small_media,
)
from trioproxy.testing.hostile import HostileOrigin, streaming_transport
from trioproxy.upstream.policy import GuardedEngineClient

HOSTILE = "http://hostile.test"
CHUNK = 64 << 10
CASES = {
    "endless": "/endless.m3u8",
    "huge": "/huge.m3u8",
    "bomb": "/bomb.m3u8",
    "endless-segment": "/endless-segment.m3u8",
    "oversized": "/oversized.m3u8",
    "gzip-segments": "/gzip-segments.m3u8",
    "engine-api": "/engine-api.m3u8",
    "elsewhere": "/elsewhere.m3u8",
    "good": "/good.m3u8",
    "good-gzip": "/good-gzip.m3u8",
}


def hostile_config(**changes: Any) -> Config:
    values: dict[str, Any] = {
        "engines": (ENGINE_URL,),
        "sources": tuple((name, HOSTILE + path) for name, path in CASES.items()),
        "max_playlist_bytes": 256 << 10,
        "max_segment_bytes": 1 << 20,
        "upstream_timeout": 3.0,
        "hls_buffer_ready_timeout": 30.0,
        "hls_initial_segments": 2,
        "stat_interval": 3600.0,
        "failure_backoff": 60.0,
        "playlist_thread_bytes": 1 << 30,  # read inline: these tests run on the virtual clock
    }
    values.update(changes)
    return Config(**values)


@dataclass
class HostileHarness:
    origin: HostileOrigin
    engine: SimulatedEngine
    elsewhere: RefusingTransport
    registry: Registry
    client: httpx.AsyncClient

    async def play(self, name: str) -> httpx.Response:
        """A player's first two requests for source ``name``: the redirect, then the playlist."""
        first = await self.client.get(f"/sources/{name}.m3u8")
        assert first.status_code == 302
        return await self.client.get(first.headers["location"])

    def channel(self, name: str) -> Channel:
        channel = self.registry.get(f"source/{name}")
        assert channel is not None
        return channel


@asynccontextmanager
async def hostile_harness(
    config: Config, origin: HostileOrigin | None = None
) -> AsyncIterator[HostileHarness]:
    """The kit's in-memory proxy with the hostile origin mounted at :data:`HOSTILE`."""
    origin = origin or HostileOrigin(engine_url=ENGINE_URL, elsewhere_url="http://elsewhere.test")
    engine = SimulatedEngine(small_media(), durations=[2.0], backlog=6.0)
    elsewhere = RefusingTransport(httpx.MockTransport(lambda request: httpx.Response(200)))
    elsewhere.refusing = True  # counts what reaches it: nothing should
    async with streaming_transport(origin) as hostile:
        mounts: dict[str, httpx.AsyncBaseTransport] = {
            HOSTILE: hostile,
            "all://elsewhere.test": elsewhere,
        }
        async with harness(config, engine, mounts=mounts) as h:
            yield HostileHarness(origin, h.sim, elsewhere, h.registry, h.client)


async def plays(h: HostileHarness, name: str) -> None:
    """The good source answers a playlist and its newest segment."""
    response = await h.client.get(f"/sources/{name}.m3u8?client=other")
    assert response.status_code == 200, response.text
    segment = await h.client.get(response.text.strip().splitlines()[-1])
    assert segment.status_code == 200
    assert segment.content.startswith(b"/good/")


@pytest.mark.parametrize(
    ("case", "reason", "setting", "refused_at_once"),
    [
        ("endless", "playlist is larger than 262144 bytes", "MAX_PLAYLIST_BYTES", True),
        ("huge", "bytes is larger than 262144 bytes", "MAX_PLAYLIST_BYTES", True),
        ("bomb", "playlist decodes to larger than 262144 bytes", "MAX_PLAYLIST_BYTES", True),
        ("endless-segment", "segment is larger than 1048576", "MAX_SEGMENT_BYTES", False),
        ("oversized", "segment of 2147483648 bytes is larger", "MAX_SEGMENT_BYTES", False),
        ("gzip-segments", "segment arrived content-encoded (gzip)", "", False),
        ("engine-api", "the engine's API is never fetched", "", True),
        ("elsewhere", "add elsewhere.test:80 to", "ALLOW_UPSTREAM_HOSTS", True),
    ],
)
async def test_each_attack_ends_its_channel_with_its_reason(
    autojump_clock: trio.testing.MockClock,
    case: str,
    reason: str,
    setting: str,
    refused_at_once: bool,
) -> None:
    config = hostile_config()
    async with hostile_harness(config) as h:
        assert (await h.play("good")).status_code == 200
        first = await h.client.get(f"/sources/{case}.m3u8")
        channel = h.channel(case)
        assert isinstance(channel.client, GuardedEngineClient)
        response = await h.client.get(first.headers["location"])
        failed_at = trio.current_time()
        assert response.status_code == 502, response.text
        message = response.json()["message"]
        assert reason in message
        assert "hostile.test" in message or "elsewhere.test" in message
        if setting:
            assert f"TRIOPROXY_{setting}" in message
        if refused_at_once:  # a playlist over its bound, a host or path refused: no retry
            assert failed_at < 1.0
        else:  # segments over a bound are gaps at once, never retried; no good one ends it
            assert failed_at <= config.upstream_timeout + 2.0
        assert channel.failure is not None
        assert reason in channel.failure.message
        assert len(channel.window) == 0
        # Bounded: each request read at most its bound and a chunk; nothing of it was kept.
        requests = len(h.origin.requests) - h.origin.requests_under("/good")
        bound = max(config.max_playlist_bytes, config.max_segment_bytes) + CHUNK
        assert channel.client.bytes_received <= requests * bound
        # The other channel plays on, and its reloads still work.
        await trio.sleep(4.0)
        await plays(h, "good")
        assert h.registry.get("source/good") is not None
    # Media was always asked for unencoded.
    assert set(h.origin.accept_encodings) == {"identity"}


async def test_segments_elsewhere_are_not_retried(autojump_clock: trio.testing.MockClock) -> None:
    async with hostile_harness(hostile_config()) as h:
        response = await h.play("elsewhere")
        assert response.status_code == 502
        assert "TRIOPROXY_ALLOW_UPSTREAM_HOSTS" in response.json()["message"]
        # The playlist was read once: no reload, no segment request, no retry.
        assert h.origin.requests.count("/elsewhere.m3u8") == 1
        assert h.elsewhere.refused == 0
        assert trio.current_time() < 1.0


async def test_a_dvr_playlist_within_the_bound_plays(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = hostile_config(max_playlist_bytes=8 << 20)
    async with hostile_harness(config) as h:
        response = await h.play("huge")
        assert response.status_code == 200
        assert h.channel("huge").window.total_bytes > 0


async def test_a_gzip_playlist_sent_anyway_plays(autojump_clock: trio.testing.MockClock) -> None:
    async with hostile_harness(hostile_config()) as h:
        assert (await h.play("good-gzip")).status_code == 200
        await plays(h, "good-gzip")


@pytest.mark.parametrize("allow", [(), ("*",)])
async def test_a_playlist_cannot_open_or_stop_engine_sessions(
    autojump_clock: trio.testing.MockClock, allow: tuple[str, ...]
) -> None:
    config = hostile_config(allow_upstream_hosts=allow)
    origin = HostileOrigin(engine_url=ENGINE_URL)
    async with hostile_harness(config, origin) as h:
        response = await h.client.get("/ace/getstream", params={"id": CONTENT_A})
        engine_playlist = response.headers["location"]
        assert (await h.client.get(engine_playlist)).status_code == 200
        # The hostile origin learns the session from the public status, as anyone can.
        status = (await h.client.get("/proxy/status")).json()
        session = status["channels"][0]["playback_session_id"]
        origin.sessions.append((CONTENT_A, session))
        response = await h.play("engine-api")
        assert response.status_code == 502
        assert "engine's API" in response.json()["message"]
        await trio.sleep(6.0)
        assert list(h.engine.sessions) == [session]  # none opened ...
        assert h.engine.stops == []  # ... none stopped
        assert (await h.client.get(engine_playlist)).status_code == 200
        # An engine channel fetches from its own engine only, not from the hostile origin.
        engine_channel = h.registry.get(CONTENT_A)
        assert engine_channel is not None
        assert isinstance(engine_channel.client, GuardedEngineClient)
        assert engine_channel.client.permits(ENGINE_URL + "/ace/c/x/1.ts")
        assert engine_channel.client.permits(HOSTILE + "/good/1.ts") == (allow == ("*",))


async def test_a_player_waiting_for_segments_is_told_the_last_upstream_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The wait for the first segments ends before the channel would end for its failing segments.
    config = hostile_config(hls_buffer_ready_timeout=2.0, upstream_timeout=30.0)
    async with hostile_harness(config) as h:
        first = await h.client.get("/sources/oversized.m3u8")
        response = await h.client.get(first.headers["location"])
        assert response.status_code == 503
        message = response.json()["message"]
        assert "no segments within 2 s" in message
        assert "last upstream error" in message
        assert "larger than 1048576" in message
        assert "TRIOPROXY_MAX_SEGMENT_BYTES" in message
