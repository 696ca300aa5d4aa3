"""An upstream session on its own: any upstream will do, and failures leave it as SessionEnded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import trio
import trio.testing

from trioproxy.channels.feed import Feed
from trioproxy.channels.session import SessionEnded, UpstreamSession
from trioproxy.errors import EngineError
from trioproxy.hls.window import SegmentWindow
from trioproxy.testing.harness import default_config
from trioproxy.upstream.engine import Engine, EngineClient, KeyType, Session
from trioproxy.upstream.resources import ResourceCache

SESSION = Session(
    playback_url="http://engine.test/playlist.m3u8",
    stat_url="",
    command_url="http://engine.test/cmd",
    playback_session_id="s1",
    is_live=1,
    pid="p1",
)


class SlowUpstream:
    """Opens after ``open_delay`` seconds (or refuses); records every stop."""

    key_type: KeyType = "content_id"
    key = "k" * 40
    engine = Engine("http://engine.test")
    engine_load = engine

    def __init__(self, open_delay: float, *, refuse: bool = False) -> None:
        self.open_delay = open_delay
        self.refuse = refuse
        self.stopped: list[tuple[Session, float]] = []

    async def open(self, client: EngineClient) -> Session:
        await trio.sleep(self.open_delay)
        if self.refuse:
            raise EngineError("engine refused the session: busy")
        return SESSION

    async def stop(self, client: EngineClient, session: Session) -> None:
        await trio.sleep(1.0)
        self.stopped.append((session, trio.current_time()))


@asynccontextmanager
async def session_of(upstream: SlowUpstream) -> AsyncIterator[UpstreamSession]:
    playlists = httpx.MockTransport(lambda request: httpx.Response(404))
    async with httpx.AsyncClient(transport=playlists) as http:
        config = default_config(session_timeout=20.0)
        feed = Feed(SegmentWindow(8), ResourceCache(8))
        yield UpstreamSession(
            name="test", upstream=upstream, client=EngineClient(http), feed=feed, config=config
        )


async def test_a_refused_open_is_session_ended_and_nothing_is_stopped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    upstream = SlowUpstream(2.0, refuse=True)
    async with session_of(upstream) as session, trio.open_nursery() as nursery:
        with pytest.raises(SessionEnded) as caught:
            await nursery.start(session.run)
    assert caught.value.reason == "engine session failed: engine refused the session: busy"
    assert isinstance(caught.value.error, EngineError)
    assert session.session is None
    assert upstream.stopped == []


async def test_an_open_past_its_deadline_is_session_ended_at_the_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    upstream = SlowUpstream(60.0)
    async with session_of(upstream) as session, trio.open_nursery() as nursery:
        with pytest.raises(SessionEnded) as caught:
            await nursery.start(session.run)
    assert trio.current_time() == 20.0
    assert caught.value.reason == "engine session timed out"
    assert caught.value.error.message == "engine did not open a session in 20 s"


async def test_cancelled_while_opening_the_session_opened_is_stopped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    upstream = SlowUpstream(5.0)
    async with session_of(upstream) as session:
        with trio.move_on_after(1.0) as scope:  # a stop during the open: it is shielded
            async with trio.open_nursery() as nursery:
                await nursery.start(session.run)
    assert scope.cancelled_caught
    assert session.session == SESSION
    assert upstream.stopped == [(SESSION, 6.0)]


async def test_hurry_cuts_the_open_short(autojump_clock: trio.testing.MockClock) -> None:
    upstream = SlowUpstream(15.0)
    async with session_of(upstream) as session, trio.open_nursery() as nursery:
        session.hurry(3.0)
        with pytest.raises(SessionEnded, match="timed out"):
            await nursery.start(session.run)
    assert trio.current_time() == 3.0
