"""Named generic HLS sources (TRIOPROXY_SOURCES / TRIOPROXY_SOURCES_FILE), served like engine
streams: one upstream poller for all players, idle stop, events with ``key_type`` ``"url"``."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from trioproxy.config import ConfigError, load_config
from trioproxy.config.sources import parse_source_list, parse_sources_file
from trioproxy.testing.harness import ORCHESTRATOR_URL, harness
from trioproxy.testing.orchestrator import FakeOrchestrator

from ..origin import ORIGIN_URL, Origin, origin_config

FEED = ORIGIN_URL + "/feeds/news/index.m3u8"


def live_feed(load: int) -> str:
    """A live playlist that gains a segment every reload."""
    first = max(0, load - 4)
    rows = ["#EXTM3U", "#EXT-X-TARGETDURATION:2", f"#EXT-X-MEDIA-SEQUENCE:{first}"]
    for n in range(first, load + 1):
        rows += ["#EXTINF:2.0,", f"n{n}.ts"]
    return "\n".join(rows) + "\n"


def news_origin() -> Origin:
    return Origin(playlists={"/feeds/news/index.m3u8": live_feed})


async def test_a_source_is_served_to_many_players_from_one_poller(
    autojump_clock: trio.testing.MockClock,
) -> None:
    orchestrator = FakeOrchestrator()
    origin = news_origin()
    config = origin_config(sources=(("news", FEED),), orchestrator_url=ORCHESTRATOR_URL)
    async with harness(config, orchestrator=orchestrator, origin=origin) as h:

        async def player() -> None:
            first = await h.client.get("/sources/news.m3u8")
            assert first.status_code == 302
            url = first.headers["location"]
            assert url.startswith("/sources/news.m3u8?client=")
            for _ in range(5):
                response = await h.client.get(url)
                assert response.status_code == 200
                assert response.headers["content-type"] == "application/vnd.apple.mpegurl"
                segment_url = response.text.strip().splitlines()[-1]
                assert segment_url.startswith("/sources/news/")
                segment = await h.client.get(segment_url)
                assert segment.status_code == 200
                assert segment.headers["content-type"] == "video/mp2t"
                assert segment.headers["access-control-allow-origin"] == "*"
                await trio.sleep(2.0)

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(player)
        channel = h.registry.get("source/news")
        assert channel is not None
        assert channel.clients.count(trio.current_time()) == 3
        assert len(h.registry.channels) == 1
        # One poller: the origin saw about one reload per target duration, not one per player.
        assert origin.playlist_loads <= trio.current_time() / 2.0 + 3
        # Players gone: the channel stops after the idle timeout and the grace period.
        await trio.sleep(config.hls_client_idle_timeout + config.proxy_grace_period + 1)
        assert h.registry.get("source/news") is None
    started = orchestrator.events[0].payload
    assert started["stream"] == {"key_type": "url", "key": FEED}
    assert started["engine"] == {"host": "origin.test", "port": 80}
    assert orchestrator.kinds() == ["stream_started", "stream_ended"]
    ended = orchestrator.events[1].payload
    assert ended["stream_id"] == started["labels"]["stream_id"]


async def test_only_configured_sources_exist(autojump_clock: trio.testing.MockClock) -> None:
    config = origin_config(sources=(("news", FEED),))
    origin = news_origin()
    async with harness(config, origin=origin) as h:
        for path in ["/sources/other.m3u8", "/sources/NEWS.m3u8", "/sources/..%2Fx.m3u8"]:
            response = await h.client.get(path)
            assert response.status_code == 404, path
            assert response.json()["error"] == "not_found"
        # A URL the client supplies is never fetched.
        response = await h.client.get(
            "/sources/news.m3u8", params={"client": "abcdefgh12", "url": "http://evil.test/x"}
        )
        assert response.status_code == 200
        assert not any("evil" in r for r in origin.requests)
        assert h.registry.get("source/news") is not None


async def test_head_never_starts_a_source(autojump_clock: trio.testing.MockClock) -> None:
    config = origin_config(sources=(("news", FEED),))
    origin = news_origin()
    async with harness(config, origin=origin) as h:
        response = await h.client.head("/sources/news.m3u8")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/vnd.apple.mpegurl"
        assert response.headers["access-control-allow-origin"] == "*"
        head = await h.client.head("/ace/getstream", params={"id": "f" * 40})
        assert head.status_code == 200
        await trio.sleep(5)
        assert h.registry.channels == []
        assert origin.requests == []


async def test_preflight_is_answered_for_player_paths(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness(origin_config(), origin=news_origin()) as h:
        response = await h.client.options("/ace/hls/" + "f" * 40 + "/00000000/1.ts")
        assert response.status_code == 204
        assert response.headers["access-control-allow-origin"] == "*"
        assert "GET" in response.headers["access-control-allow-methods"]


def test_source_settings(tmp_path: Path) -> None:
    listing = tmp_path / "sources.txt"
    listing.write_text("# name url\nnews http://a.test/n.m3u8\n\nsport https://b.test/s.m3u8\n")
    config = load_config(
        {"TRIOPROXY_SOURCES": "music=http://c.test/m.m3u8", "TRIOPROXY_SOURCES_FILE": str(listing)}
    )
    assert config.source_url("music") == "http://c.test/m.m3u8"
    assert config.source_url("sport") == "https://b.test/s.m3u8"
    assert config.source_url("nope") is None


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("TRIOPROXY_SOURCES", "news", "not name=url"),
        ("TRIOPROXY_SOURCES", "News=http://a.test/x", "source name"),
        ("TRIOPROXY_SOURCES", "news=ftp://a.test/x", "not an http(s) URL"),
        ("TRIOPROXY_SOURCES", "a=http://x.test/1,a=http://x.test/2", "named twice"),
        ("TRIOPROXY_SOURCES_FILE", "/nonexistent/sources.txt", "cannot read"),
    ],
)
def test_bad_source_settings_name_the_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=variable) as caught:
        load_config({variable: value})
    assert message in str(caught.value)


def test_source_file_lines() -> None:
    assert parse_sources_file("a http://x.test/a\n  # c\n") == (("a", "http://x.test/a"),)
    with pytest.raises(ValueError, match="line 1"):
        parse_sources_file("a b c\n")
    assert parse_source_list(" a=http://x.test/a , ") == (("a", "http://x.test/a"),)


MASTER = """#EXTM3U
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="Deutsch",LANGUAGE="de",DEFAULT=YES,URI="de.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=900000,CODECS="avc1.4d401f",AUDIO="aud"
video.m3u8
"""


async def test_a_source_with_a_separate_audio_rendition(
    autojump_clock: trio.testing.MockClock,
) -> None:
    origin = Origin(playlists={"/feeds/tv/master.m3u8": MASTER})
    config = origin_config(sources=(("tv", ORIGIN_URL + "/feeds/tv/master.m3u8"),))
    async with harness(config, origin=origin) as h:
        master = await h.client.get("/sources/tv.m3u8", params={"client": "player-one"})
        assert master.status_code == 200
        lines = master.text.splitlines()
        assert lines[-1] == "/sources/tv.m3u8?client=player-one&media=1"
        media_tag = next(line for line in lines if line.startswith("#EXT-X-MEDIA:"))
        assert 'URI="/sources/tv.r0/index.m3u8?client=player-one"' in media_tag
        assert 'NAME="Deutsch"' in media_tag
        audio = await h.client.get("/sources/tv.r0/index.m3u8?client=player-one")
        assert audio.status_code == 200
        segment = audio.text.strip().splitlines()[-1]
        assert segment.startswith("/sources/tv.r0/")
        assert (await h.client.get(segment)).status_code == 200
        video = await h.client.get(lines[-1])
        assert video.text.startswith("#EXTM3U\n#EXT-X-VERSION:3")
        assert (await h.client.get("/sources/tv.r1/index.m3u8")).status_code == 404
        assert (await h.client.get("/sources/nope.r0/index.m3u8")).status_code == 404
    assert "/feeds/tv/de.m3u8" in origin.requests
