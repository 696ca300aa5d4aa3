"""The URL scheme: each declared path routes the same in Quart and in the lean media path, builds
what it routes, and every path shape answers a wrong part with a JSON 404 and a wrong method with
a JSON 405."""

from __future__ import annotations

import re

import httpx
import pytest
import trio
import trio.testing

from trioproxy.channels.registry import Registry
from trioproxy.http import urls
from trioproxy.http.app import create_app
from trioproxy.http.urls import MediaRequest
from trioproxy.testing.harness import CONTENT_A, PROXY_URL, asgi_transport, default_config, harness

INC = "0123abcd" * 4
"""An incarnation: 128 bits."""

SAMPLES = {
    "channel": CONTENT_A,
    "key_type": "infohash",
    "stream": CONTENT_A + ".r1",
    "source": "news",
    "source_rendition": "news.r0",
    "source_stream": "news.r2",
    "incarnation": INC,
    "number": "17",
    "segment_ext": "m4s",
    "resource_ext": "key",
    "xtream_user": "alice",
    "xtream_password": "alice-0123456789abcdef",
}
"""A valid value of each kind of part (a new kind needs one here)."""


def placeholders(path: urls.Path) -> dict[str, str]:
    """Each placeholder of ``path`` and the kind of part it takes."""
    return {name: part for part, name in re.findall(r"<(\w+):(\w+)>", path.rule)}


def sample(path: urls.Path, **changes: str) -> str:
    values = {name: SAMPLES[part] for name, part in placeholders(path).items()}
    return path.build(**{**values, **changes})


def test_every_kind_of_part_has_a_sample() -> None:
    assert set(SAMPLES) == set(urls.PARTS)
    used = {part for path in urls.PATHS for part in placeholders(path).values()}
    assert used == set(urls.PARTS)


@pytest.mark.parametrize("path", urls.PATHS, ids=lambda path: path.rule)
async def test_quart_and_the_lean_path_route_what_each_path_builds(path: urls.Path) -> None:
    values = {name: SAMPLES[part] for name, part in placeholders(path).items()}
    built = path.build(**values)
    assert path.match(built) == values
    assert path.build("/mount", **values) == "/mount" + built
    assert [other for other in urls.PATHS if other.match(built) is not None] == [path]
    async with httpx.AsyncClient() as http:
        adapter = create_app(Registry(default_config(), http), default_config()).url_map.bind("x")
    for method in path.methods:
        rule, arguments = adapter.match(built, method=method, return_rule=True)
        assert (rule.rule, arguments) == (path.rule, values)


def test_the_urls_of_the_contract() -> None:
    inc = "0123abcd" * 4
    assert urls.PLAYLIST.build("", name=CONTENT_A) == f"/ace/hls/{CONTENT_A}/index.m3u8"
    assert urls.segment_url("", CONTENT_A, inc, 42, "ts") == f"/ace/hls/{CONTENT_A}/{inc}/42.ts"
    assert (
        urls.resource_url("/m", CONTENT_A, inc, "3.mp4") == f"/m/ace/hls/{CONTENT_A}/{inc}/r/3.mp4"
    )
    assert urls.rendition_url("", CONTENT_A, 2) == f"/ace/hls/{CONTENT_A}.r2/index.m3u8"
    assert urls.segment_url("", "source/news", inc, 5, "aac") == f"/sources/news/{inc}/5.aac"
    assert (
        urls.resource_url("", "source/news.r1", inc, "9.key") == f"/sources/news.r1/{inc}/r/9.key"
    )
    assert urls.rendition_url("", "source/news", 0) == "/sources/news.r0/index.m3u8"
    assert urls.SOURCE.build("", name="news") == "/sources/news.m3u8"
    assert urls.CHANNEL.build("", name=CONTENT_A) == f"/proxy/channels/{CONTENT_A}"
    assert urls.M3U.build("http://h:8000/p") == "http://h:8000/p/playlist.m3u"


def test_the_stream_urls_of_a_channel_list() -> None:
    base = "http://h:8000"
    assert urls.stream_url(base, "content_id", CONTENT_A, "hls") == (
        f"{base}/ace/manifest.m3u8?id={CONTENT_A}"
    )
    assert urls.stream_url(base, "infohash", CONTENT_A, "hls") == (
        f"{base}/ace/manifest.m3u8?infohash={CONTENT_A}"
    )
    assert urls.stream_url("", "content_id", CONTENT_A, "ts") == (
        f"/ace/getstream?id={CONTENT_A}&format=ts"
    )


@pytest.mark.parametrize("channel", [CONTENT_A, f"{CONTENT_A}.r3", "source/news", "source/a.r0"])
def test_media_urls_name_their_channel(channel: str) -> None:
    segment = urls.segment_url("/mount", channel, "0123abcd" * 4, 42, "ts").removeprefix("/mount")
    assert urls.match_media(segment) == MediaRequest(channel, "0123abcd" * 4, 42, "ts", False)
    resource = urls.resource_url("", channel, "0123abcd" * 4, "7.key")
    assert urls.match_media(resource) == MediaRequest(channel, "0123abcd" * 4, 7, "key", True)


@pytest.mark.parametrize(
    "path",
    [
        f"/ace/hls/{CONTENT_A}/{INC}/1.mp4",  # a resource extension without r/
        f"/ace/hls/{CONTENT_A}/{INC}/r/1.ts",  # a segment extension under r/
        f"/ace/hls/{CONTENT_A}/{INC}/1.ts\n",
        f"/ace/hls/{CONTENT_A}/{INC}/{'1' * 16}.ts",
        f"/ace/hls/{CONTENT_A.upper()}/{INC}/1.ts",
        f"/ace/hls/{CONTENT_A}.r100/{INC}/1.ts",
        f"/ace/hls/{CONTENT_A}/{INC.upper()}/1.ts",
        f"/ace/hls/{CONTENT_A}/0123abcd/1.ts",  # 32 bits: too few to be unguessable
        f"/ace/hls/news/{INC}/1.ts",  # a source name under /ace/hls/
        f"/sources/{'n' * 65}/{INC}/1.ts",
        f"/ace/hls/{CONTENT_A}/{INC}/1.exe",
        f"/ace/hls/{CONTENT_A}/index.m3u8",
    ],
)
def test_what_is_no_media_path(path: str) -> None:
    assert urls.match_media(path) is None


BAD_PARTS = [
    pytest.param(path, name, id=f"{path.rule}-{name}")
    for path in urls.PATHS
    for name in placeholders(path)
]


@pytest.mark.parametrize(("path", "name"), BAD_PARTS)
async def test_a_bad_part_is_a_json_404(
    autojump_clock: trio.testing.MockClock, path: urls.Path, name: str
) -> None:
    url = sample(path, **{name: "Z"})
    async with harness() as h:
        for method in path.methods:
            response = await h.client.request(method, url)
            assert response.status_code == 404, (method, url, response.text)
            assert response.headers["content-type"] == "application/json"
            if method != "HEAD":
                assert response.json()["error"] == "not_found"
                assert response.json()["message"]
        assert h.sim.sessions == {}


@pytest.mark.parametrize("path", urls.PATHS, ids=lambda path: path.rule)
async def test_a_wrong_method_is_a_json_405(
    autojump_clock: trio.testing.MockClock, path: urls.Path
) -> None:
    method = "PUT" if "GET" in path.methods else "GET"
    async with harness() as h:
        response = await h.client.request(method, sample(path))
        assert response.status_code == 405, response.text
        assert response.headers["content-type"] == "application/json"
        assert response.json()["error"] == "method_not_allowed"
        assert set(path.methods) <= set(response.headers["allow"].split(", "))
        assert h.sim.sessions == {}


async def test_the_app_alone_serves_media_as_the_lean_path_does(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        playlist = await h.open_playlist(CONTENT_A)
        segment = next(line for line in playlist.text.splitlines() if line.startswith("/"))
        missing = re.sub(r"/[0-9]+\.ts$", "/999999.ts", segment)
        assert missing != segment
        quart = create_app(h.registry, h.config)
        async with httpx.AsyncClient(transport=asgi_transport(quart), base_url=PROXY_URL) as alone:
            for url in (segment, missing):
                for method in ("GET", "HEAD"):
                    lean = await h.client.request(method, url)
                    slow = await alone.request(method, url)
                    assert (slow.status_code, slow.content) == (lean.status_code, lean.content)
                    for header in ("content-type", "cache-control", "access-control-allow-origin"):
                        assert slow.headers[header] == lean.headers[header]
        assert (await h.client.get(segment)).status_code == 200
        assert (await h.client.get(missing)).json()["error"] == "not_found"
