"""The player simulator: what it fetches, at what pace, and what it writes down."""

from __future__ import annotations

import trio
import trio.testing

from trioproxy.testing.harness import CONTENT_A, harness
from trioproxy.testing.players import (
    Answer,
    Player,
    PlayerLog,
    Reply,
    hlsjs_next_reload,
    hlsjs_reload_interval,
    parse_playlist,
    segment_sequence,
)


def test_player_reads_target_duration_and_uris() -> None:
    text = "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4.0,\n/a/1.ts\n#EXTINF:4.0,\n/a/2.ts\n"
    assert parse_playlist(text) == (4.0, ["/a/1.ts", "/a/2.ts"])
    assert segment_sequence("/ace/hls/x/0badbeef/17.ts?a=1") == 17
    assert segment_sequence("/sources/news/init.mp4") is None


def _playlist(first: int, last: int) -> bytes:
    rows = ["#EXTM3U", "#EXT-X-TARGETDURATION:2"]
    for n in range(first, last + 1):
        rows += ["#EXTINF:2.0,", f"/s/{n}.ts"]
    return ("\n".join(rows) + "\n").encode()


class Scripted:
    """Answers the n-th playlist load with the n-th playlist, segments with 200."""

    def __init__(self, playlists: list[bytes]) -> None:
        self.playlists = playlists
        self.asked: list[tuple[float, str]] = []

    async def __call__(self, url: str) -> Reply:
        await trio.lowlevel.checkpoint()
        self.asked.append((trio.current_time(), url))
        if url.endswith(".m3u8"):
            loads = sum(1 for _, u in self.asked if u.endswith(".m3u8"))
            if loads > len(self.playlists):
                return Answer(503, {"retry-after": "7"}, b"")
            return Answer(200, {}, self.playlists[loads - 1])
        return Answer(200, {}, b"x" * 10)


async def test_each_new_segment_once_and_the_gaps(autojump_clock: trio.testing.MockClock) -> None:
    get = Scripted([_playlist(1, 3), _playlist(3, 5), _playlist(3, 5), _playlist(8, 9)])
    log = PlayerLog()
    await Player(get, log).play("/live/index.m3u8", until=7.0)
    # One load per target duration; on the first only the newest segment.
    assert [t for t, u in get.asked if u.endswith(".m3u8")] == [0.0, 2.0, 4.0, 6.0]
    assert log.sequences == [3, 4, 5, 8, 9]
    assert log.gaps == [(5, 8)]
    assert log.segments == 5
    assert log.segment_bytes == 50
    assert log.statuses("playlist") == [200, 200, 200, 200]
    assert log.counts == {"playlist 200": 4, "segment 200": 5}
    assert log.errors == []
    assert trio.current_time() == 8.0  # the wait after the last load is a whole one


def test_hlsjs_reload_rule() -> None:
    # A reload that brought a new segment: one target duration, or the last segment's if shorter.
    assert hlsjs_reload_interval(2.0, 2.0, updated=True) == 2.0
    assert hlsjs_reload_interval(4.0, 3.2, updated=True) == 3.2
    assert hlsjs_reload_interval(2.0, None, updated=True) == 2.0
    # One that brought none: half the target duration.
    assert hlsjs_reload_interval(4.0, 3.2, updated=False) == 2.0
    # The schedule keeps its phase, unless it fell behind.
    assert hlsjs_next_reload(10.0, 2.0, now=10.3) == 12.0
    assert hlsjs_next_reload(10.0, 2.0, now=12.5) == 12.5


async def test_hlsjs_reloads_at_half_the_target_after_a_miss(
    autojump_clock: trio.testing.MockClock,
) -> None:
    get = Scripted([_playlist(1, 3), _playlist(1, 3), _playlist(2, 4), _playlist(3, 5)])
    log = PlayerLog()
    await Player(get, log, hlsjs_reload=True).play("/live/index.m3u8", until=5.5)
    # 0: new → 2 s; 2: no new segment → 1 s; 3: new → 2 s; 5.
    assert [t for t, u in get.asked if u.endswith(".m3u8")] == [0.0, 2.0, 3.0, 5.0]
    assert log.sequences == [3, 4, 5]


async def test_retry_after_and_leaving(autojump_clock: trio.testing.MockClock) -> None:
    get = Scripted([_playlist(1, 2)])
    log = PlayerLog()
    player = Player(get, log, retry_after=True, leave_on_error=True, segments=False)
    await player.play("/live/index.m3u8", until=20.0)
    loads = [t for t, u in get.asked if u.endswith(".m3u8")]
    assert loads == [0.0, 2.0, 9.0, 16.0]  # after each 503, what Retry-After said
    assert log.statuses("playlist") == [200, 503, 503, 503]
    assert [at for at, _ in log.errors] == [2.0, 9.0, 16.0]
    leaving = Player(Scripted([]), PlayerLog(), leave_on_error=True)
    await leaving.play("/live/index.m3u8", until=100.0)
    assert leaving.log.statuses("playlist") == [503]  # left at the first error


async def test_a_player_through_the_harness(autojump_clock: trio.testing.MockClock) -> None:
    async with harness() as h:
        log = PlayerLog()
        statuses = await h.play(await h.start(CONTENT_A), until=20.0, log=log)
        assert statuses == [200] * 10
        assert log.gaps == []
        assert log.sequences == list(range(1, 10))  # one new segment per reload, in order
        assert log.first_segment.is_set()
        assert (await h.wait_channel(CONTENT_A)).state.value == "ready"
