"""Media playlists are rendered once per change of the window and URL prefix: every request in
between gets the same ``bytes`` object, byte-identical to a fresh rendering."""

from __future__ import annotations

import trio
import trio.testing

from trioproxy.http.playlists import media_playlist, render
from trioproxy.testing.harness import CONTENT_A, default_config, harness
from trioproxy.testing.players import parse_playlist


async def test_one_rendering_until_a_segment_arrives(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        url = await h.start()
        first = await h.client.get(url)
        assert first.status_code == 200
        channel = h.channel()
        cached = media_playlist(channel, "")
        assert media_playlist(channel, "") is cached
        assert first.content == cached == render(channel, "").encode()
        renders = channel.feed.rendered.renders
        again = await h.client.get(url)
        assert again.content == cached
        assert channel.feed.rendered.renders == renders  # served from the cache
        version = channel.window.version
        await trio.sleep(3.0)  # a new 2 s segment is in (and the next one 1 s away)
        assert channel.window.version != version
        fresh = media_playlist(channel, "")
        assert fresh is not cached
        assert fresh != cached
        assert fresh == render(channel, "").encode()
        assert (await h.client.get(url)).content == fresh
        assert media_playlist(channel, "") is fresh


async def test_each_prefix_gets_its_own(autojump_clock: trio.testing.MockClock) -> None:
    async with harness() as h:
        await h.open_playlist()
        channel = h.channel()
        plain, prefixed = media_playlist(channel, ""), media_playlist(channel, "/tv")
        assert plain is media_playlist(channel, "")
        assert prefixed is media_playlist(channel, "/tv")
        _, uris = parse_playlist(prefixed.decode())
        assert uris
        assert all(uri.startswith("/tv/ace/") for uri in uris)
        assert prefixed.replace(b"/tv/", b"/") == plain


async def test_players_with_their_own_keys_share_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Media URLs carry no player key and no client token: one rendering serves them all.
    keys = ("alice-0123456789abcdef", "bob-fedcba9876543210xyz")
    async with harness(default_config(player_keys=keys)) as h:

        async def playlist(key: str) -> bytes:
            where = await h.client.get("/ace/getstream", params={"id": CONTENT_A, "key": key})
            assert f"key={key}" in where.headers["location"]
            return (await h.client.get(where.headers["location"])).content

        await playlist(keys[0])
        channel = h.channel()
        version, renders = channel.window.version, channel.feed.rendered.renders
        bodies = [await playlist(key) for key in keys]
        assert channel.window.version == version  # no segment came in between
        assert bodies == [media_playlist(channel, "")] * 2
        assert channel.feed.rendered.renders == renders
