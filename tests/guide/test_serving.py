"""``/epg.xml`` through the proxy in memory, in front of a fake EPG server: the guide a player
gets is the listed channels' part of the fetched one, gzip or plain; it survives failed fetches,
slow servers and restarts; ``/proxy/status`` tells what happened."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from trioproxy.testing.harness import Harness, harness

from .epg import (
    EPG_HOST,
    GOOD,
    NEWER,
    EpgServer,
    cut_after,
    epg_config,
    guide,
    gzipped,
    listed,
    slowly,
)

LISTED_GOOD = {
    "channels": ["bbc1.uk", "Local.News"],
    "programmes": [
        ("bbc1.uk", "News"),
        ("bbc1.uk", "Weather"),
        ("bbc1.uk", "Film"),
        ("Local.News", "Local"),
        ("Local.News", "Sport"),
    ],
}


async def guide_status(h: Harness) -> dict[str, Any]:
    response = await h.client.get("/proxy/status")
    assert response.status_code == 200
    status: dict[str, Any] = response.json()["guide"]
    return status


async def until_fetched(h: Harness, count: int = 1) -> dict[str, Any]:
    """Wait (polling every 0.1 s) until ``count`` fetches were tried: the first source's status."""
    while True:
        snapshot = h.registry.guide.snapshot()
        assert snapshot is not None
        source: dict[str, Any] = snapshot["sources"][0]
        if (source["fetched_seconds_ago"] is not None) + source["failures"] >= count:
            shown: dict[str, Any] = (await guide_status(h))["sources"][0]
            return shown
        await trio.sleep(0.1)


async def until_cached(h: Harness) -> None:
    while True:
        if (await until_fetched(h))["cached"]:
            return
        await trio.sleep(0.1)


def cut_cache_file(directory: Path) -> None:
    """Cut the one cached guide in ``directory`` short, as a full disk might have left it."""
    [cached] = list(directory.glob("guide-*.xml"))
    cached.write_bytes(cached.read_bytes()[:300])


def temporary_files(directory: Path) -> list[Path]:
    return list(directory.glob(".guide-*"))


@pytest.mark.parametrize("form", ["plain", "gzip file", "gzip transfer"])
async def test_the_guide_served_lists_the_channel_list_only(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, form: str
) -> None:
    server = EpgServer()
    body = guide(GOOD)
    if form == "plain":
        server.serve(body, headers={"content-type": "application/xml"})
    elif form == "gzip file":
        server.serve(gzipped(body), headers={"content-type": "application/gzip"})
    else:
        encoded = {"content-type": "text/xml", "content-encoding": "gzip"}
        server.serve(gzipped(body), headers=encoded)
    async with harness(epg_config(tmp_path), mounts={EPG_HOST: server.transport()}) as h:
        await until_fetched(h)
        response = await h.client.get("/epg.xml")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/xml; charset=utf-8"
        assert listed(response.content) == LISTED_GOOD
        packed = await h.client.get("/epg.xml.gz")
        assert packed.headers["content-type"] == "application/gzip"
        assert gzip.decompress(packed.content) == response.content
        head = await h.client.head("/epg.xml")
        assert head.status_code == 200
        assert head.content == b""
        # An app that has it already is told so, by either validator.
        again = await h.client.get("/epg.xml", headers={"If-None-Match": response.headers["etag"]})
        assert again.status_code == 304
        assert again.content == b""
        since = {"If-Modified-Since": response.headers["last-modified"]}
        assert (await h.client.get("/epg.xml", headers=since)).status_code == 304
        status = await guide_status(h)
        assert (status["channels"], status["programmes"]) == (2, 5)
        assert status["sources"][0]["error"] is None
        assert server.requests == [0.0]


async def test_no_guide_configured_is_a_404_naming_the_setting(tmp_path: Path) -> None:
    async with harness(epg_config(tmp_path, epg_sources=())) as h:
        response = await h.client.get("/epg.xml")
        assert response.status_code == 404
        assert "TRIOPROXY_EPG_SOURCES" in response.json()["message"]
        assert (await guide_status(h)) is None


async def test_until_a_first_guide_arrives_the_answer_is_503_with_retry_after(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    server = EpgServer()
    server.serve(slowly(guide(GOOD), piece=100, every=1.0))
    async with harness(epg_config(tmp_path), mounts={EPG_HOST: server.transport()}) as h:
        await trio.sleep(5)
        response = await h.client.get("/epg.xml.gz")
        assert response.status_code == 503
        assert response.headers["retry-after"] == "30"
        assert response.json()["error"] == "guide_not_ready"


@pytest.mark.parametrize(
    ("packed", "ending", "error"),
    [
        (True, httpx.RemoteProtocolError("peer closed connection"), "the connection broke off"),
        (True, None, "the compressed guide is cut short"),
        (False, None, "not well-formed XML"),
    ],
    ids=["connection drops", "gzip body ends", "plain body ends"],
)
async def test_a_guide_broken_midway_keeps_the_last_good_one(
    autojump_clock: trio.testing.MockClock,
    tmp_path: Path,
    packed: bool,
    ending: Exception | None,
    error: str,
) -> None:
    server = EpgServer()
    server.serve(gzipped(guide(GOOD)))
    async with harness(epg_config(tmp_path), mounts={EPG_HOST: server.transport()}) as h:
        await until_fetched(h)
        before = (await h.client.get("/epg.xml")).content
        newer = guide(NEWER, others=50)
        newer = gzipped(newer) if packed else newer
        server.serve(cut_after(newer, len(newer) // 2, ending))
        await trio.sleep_until(3600.5)
        assert server.requests == [0.0, 3600.0]
        response = await h.client.get("/epg.xml")
        assert response.status_code == 200
        assert response.content == before
        source = (await guide_status(h))["sources"][0]
        assert error in source["error"]
        assert source["fetched_seconds_ago"] == 3600.5  # the good one, still served
        assert source["failures"] == 1
        assert source["next_fetch_seconds"] == 599.5  # tried again 10 minutes on
        # The status names the source by its host only: its URL carries an account's key.
        public = await h.client.get("/proxy/status", headers={"X-Forwarded-For": "1.2.3.4"})
        shown = public.json()["guide"]["sources"][0]
        assert shown["url"] == EPG_HOST
        assert "k33psecret" not in public.text
        assert error in shown["error"]


async def test_a_garbage_answer_is_a_failed_fetch(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    server = EpgServer()
    server.serve(b"<html><body>Too many requests</body></html>", status=200)
    async with harness(epg_config(tmp_path), mounts={EPG_HOST: server.transport()}) as h:
        source = await until_fetched(h)
        assert "not an XMLTV guide: its root is <html>" in source["error"]
        server.serve(b"", status=429)
        await trio.sleep_until(600.5)
        source = (await guide_status(h))["sources"][0]
        assert source["error"] == "http://epg.test:80: HTTP 429"
        assert server.requests == [0.0, 600.0]
        assert (await h.client.get("/epg.xml")).status_code == 503


async def test_a_slow_server_is_cut_at_the_time_bound(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    server = EpgServer()
    closed: list[float] = []
    data = guide(GOOD, others=200)  # ~200 KB at 1 KB/s: 200 s

    async def trickle() -> Any:
        try:
            async for piece in slowly(data, piece=1000, every=1.0)():
                yield piece
        finally:
            closed.append(trio.current_time())

    server.serve(trickle)
    async with harness(epg_config(tmp_path), mounts={EPG_HOST: server.transport()}) as h:
        source = await until_fetched(h)
        assert closed == [60.0]
        assert "not read whole within 60 s (TRIOPROXY_EPG_TIMEOUT)" in source["error"]
        assert (await h.client.get("/epg.xml")).status_code == 503
        server.serve(guide(GOOD))
        await trio.sleep_until(600.5)
        assert server.requests == [0.0, 600.0]
        assert listed((await h.client.get("/epg.xml")).content) == LISTED_GOOD


async def test_a_guide_over_the_byte_bound_is_refused_and_not_read_on(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    server = EpgServer()
    sent: list[int] = []
    data = guide(GOOD, others=200)

    async def counted() -> Any:
        for start in range(0, len(data), 1000):
            sent.append(1000)
            yield data[start : start + 1000]

    server.serve(counted)
    config = epg_config(tmp_path, epg_max_bytes=20_000)
    async with harness(config, mounts={EPG_HOST: server.transport()}) as h:
        source = await until_fetched(h)
        assert "larger than 20000 bytes (TRIOPROXY_EPG_MAX_BYTES)" in source["error"]
        assert sum(sent) <= 25_000 < len(data)


async def test_a_restart_serves_the_cached_guide_at_once(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    server = EpgServer()
    server.serve(gzipped(guide(GOOD)))
    async with harness(epg_config(tmp_path), mounts={EPG_HOST: server.transport()}) as h:
        await until_cached(h)
        first = await h.client.get("/epg.xml")
        served = first.content
    # The next run: the EPG server is down, and the guide is there from the first request.
    down = EpgServer()
    down.serve(b"", status=503)
    restarted = trio.current_time()
    async with harness(epg_config(tmp_path), mounts={EPG_HOST: down.transport()}) as h:
        response = await h.client.get("/epg.xml")
        assert trio.current_time() == restarted
        assert response.status_code == 200
        assert response.content == served
        # The same guide, as far as an app can tell: nothing to download again.
        assert response.headers["last-modified"] == first.headers["last-modified"]
        assert response.headers["etag"] == first.headers["etag"]
        since = {"If-Modified-Since": first.headers["last-modified"]}
        assert (await h.client.get("/epg.xml", headers=since)).status_code == 304
        source = (await guide_status(h))["sources"][0]
        assert source["cached"] is True
        assert source["fetched_at"] is not None
        # Not fetched again until a refresh period after the cached one was.
        assert down.requests == []
        assert 3590 < source["next_fetch_seconds"] <= 3600


async def test_a_cache_file_cut_short_is_ignored(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    server = EpgServer()
    server.serve(guide(GOOD))
    async with harness(epg_config(tmp_path), mounts={EPG_HOST: server.transport()}) as h:
        await until_cached(h)
    cut_cache_file(tmp_path)
    server.serve(slowly(guide(NEWER), piece=100_000, every=10.0))
    async with harness(epg_config(tmp_path), mounts={EPG_HOST: server.transport()}) as h:
        assert (await h.client.get("/epg.xml")).status_code == 503
        await until_fetched(h)
        programmes = listed((await h.client.get("/epg.xml")).content)["programmes"]
        assert programmes == [
            ("bbc1.uk", "Breakfast"),
            ("bbc1.uk", "Quiz"),
            ("Local.News", "Morning"),
        ]
    assert temporary_files(tmp_path) == []
