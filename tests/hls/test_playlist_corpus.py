"""A corpus of real-world-shaped playlists, each through the whole proxy, checked against what a
player must get.

Every ``tests/hls/data/playlists/NAME.m3u8`` is served by an in-memory origin behind a minimal
engine, growing one segment per reload as a live stream does (finished content, with
``#EXT-X-ENDLIST``, is served whole). A player opens the channel and reloads until the origin has
listed everything; then ``NAME.expected`` must equal, line for line:

- the playlist the player got (incarnations and client tokens written as placeholders), or the
  error;
- what each URL of the playlist answers: status, content type, size (playlists in full);
- every upstream file the proxy fetched, with how often (init sections and keys: once).

``TRIOPROXY_UPDATE_EXPECTED=1 pytest tests/test_playlist_corpus.py`` rewrites the expectations;
read the diff before committing it.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing

from trioproxy.hls.m3u import attribute_list
from trioproxy.testing.harness import harness

from ..origin import Origin, origin_config

CORPUS = Path(__file__).parent / "data" / "playlists"
CASES = sorted(CORPUS.glob("*.m3u8"))
TEXTS = {case: case.read_bytes().decode("utf-8") for case in CASES}
EXPECTED = {case: case.with_suffix(".expected") for case in CASES}
ENTRY = "/live/chan/index.m3u8"
MOVED = "/moved/deep/index.m3u8"
KEY = "c" * 40


def growing(text: str) -> list[str]:
    """The versions of a live playlist as it grows: up to its 1st, 2nd, ... segment, then all."""
    if "#EXT-X-ENDLIST" in text or "#EXT-X-STREAM-INF" in text:
        return [text]
    rows = re.split(r"(\r\n|\r|\n)", text)
    versions, count = [], 0
    for index, row in enumerate(rows):
        stripped = row.strip()
        if stripped and not stripped.startswith("#") and row not in ("\r\n", "\r", "\n"):
            count += 1
            versions.append("".join(rows[: index + 1]) + "\n")
    return [*versions, text]


def listed_uris(playlist: str) -> list[str]:
    uris = []
    for row in playlist.splitlines():
        if row.startswith(("#EXT-X-KEY", "#EXT-X-MAP", "#EXT-X-MEDIA:")):
            uri = attribute_list(row.partition(":")[2]).get("URI")
            if uri and uri.startswith("/"):
                uris.append(uri)
        elif row and not row.startswith("#"):
            uris.append(row)
    return list(dict.fromkeys(uris))


async def describe(case: Path, text: str) -> str:
    versions = growing(text)
    origin = Origin(entry=ENTRY)
    path = ENTRY
    if case.stem.startswith("redirected"):
        origin.redirects[ENTRY] = path = MOVED
    origin.playlists[path] = lambda load: versions[min(load, len(versions)) - 1]
    # The buffer timeout outlasts the upstream timeout: a broken upstream always ends as a
    # failure (502), whatever the jitter of the retries.
    config = origin_config(
        hls_initial_segments=1,
        hls_window_size=20,
        hls_max_segments=20,
        hls_buffer_ready_timeout=30.0,
    )
    out: list[str] = []
    async with harness(config, origin=origin) as h:
        first = await h.client.get("/ace/getstream", params={"id": KEY})
        url = first.headers["location"]
        response = await h.client.get(url)
        for _ in range(60):  # a player reloading until the origin listed everything
            if response.status_code != 200 or origin.playlist_loads > len(versions):
                break
            channel = h.registry.get(KEY)
            if channel is None or channel.endlist:
                break
            await trio.sleep(2.0)
            response = await h.client.get(url)
        await trio.sleep(12.0)  # every download done
        response = await h.client.get(url)
        channel = h.registry.get(KEY)
        if channel is not None and channel.variant is not None:
            out.append(f"# variant: {channel.variant.uri}")
        out.extend(await answer(h.client, response))
        out.append("--- upstream fetches")
        # Playlists are reloaded at the upstream's pace: listed once each, without a count.
        playlists = {r for r in origin.requests if r.endswith(".m3u8")}
        out.extend(sorted(playlists - {ENTRY, MOVED, "/ace/manifest.m3u8"}))
        # The engine's API (the session's open and stop) is not what the playlist made us fetch.
        engine_api = ("/ace/cmd/", "/ace/getstream")
        media = Counter(
            r for r in origin.requests if not r.endswith(".m3u8") and not r.startswith(engine_api)
        )
        out.extend(f"{request} x{count}" for request, count in sorted(media.items()))
    return "\n".join(out) + "\n"


async def answer(
    client: httpx.AsyncClient, response: httpx.Response, indent: str = ""
) -> list[str]:
    """What the player got, and what each URL in it answers (playlists: in full, indented)."""
    out = [f"HTTP {response.status_code} {response.headers.get('content-type')}"]
    if response.status_code != 200:
        out.append(response.json()["error"])
        return [indent + line for line in out]
    text = normalize(response.text)
    out.extend(text.splitlines())
    out.append("--- served")
    for uri in listed_uris(response.text):
        served = await client.get(uri)
        kind = served.headers.get("content-type")
        cors = served.headers.get("access-control-allow-origin")
        out.append(
            f"{normalize(uri)} {served.status_code} {kind} {len(served.content)} bytes cors={cors}"
        )
        if kind == "application/vnd.apple.mpegurl":
            out.extend(await answer(client, served, indent + "  "))
    return [indent + line for line in out]


def normalize(text: str) -> str:
    """Without what differs from run to run: incarnations and client tokens."""
    text = re.sub(r"(/ace/hls/[0-9a-f.r]{40,44})/[0-9a-f]{32}/", r"\1/<incarnation>/", text)
    return re.sub(r"client=[A-Za-z0-9_-]+", "client=<token>", text)


def test_corpus_is_big_enough() -> None:
    assert len(CASES) >= 25


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.stem)
async def test_playlist(case: Path, autojump_clock: trio.testing.MockClock) -> None:
    got = await describe(case, TEXTS[case])
    check_expected(EXPECTED[case], got)


def check_expected(expected_file: Path, got: str) -> None:
    if os.environ.get("TRIOPROXY_UPDATE_EXPECTED") == "1":
        expected_file.write_text(got)
    assert got == expected_file.read_text()
