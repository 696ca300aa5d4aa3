"""Fuzzing with Hypothesis: ids, request paths and query strings, and upstream playlists (random
mutations of real ones). Nothing may answer 500, no exception may escape a channel, and no task
may be left behind.

Each example runs its own ``trio.run`` on an autojump clock, so a minute of stream costs
milliseconds.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Awaitable, Callable
from typing import Any

import hypothesis.strategies as st
import pytest
import trio
import trio.testing
from hypercorn.typing import ConnectionState, HTTPScope
from hypothesis import HealthCheck, given, settings

from trioproxy.errors import BadRequest
from trioproxy.hls.playlist import PlaylistError, parse_media_playlist
from trioproxy.http.ids import parse_stream_key
from trioproxy.testing.asgi_stream import App
from trioproxy.testing.engine import SimulatedEngine
from trioproxy.testing.harness import (
    CONTENT_A,
    Harness,
    channel_tasks,
    default_config,
    harness,
    small_media,
)

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

REAL_PLAYLISTS = [
    # What an engine serves (the simulated one, with a discontinuity).
    "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:17\n"
    "#EXTINF:2.000,\n/ace/c/s/17.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:2.000,\n/ace/c/s/18.ts\n"
    "#EXTINF:1.960,\n/ace/c/s/19.ts\n",
    # Absolute URIs, varying durations, program date time.
    "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:5\n#EXT-X-MEDIA-SEQUENCE:1204\n"
    "#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:00.000Z\n"
    "#EXTINF:4.96,title\nhttp://engine.test:6878/ace/c/ih/1204.ts\n"
    "#EXTINF:5.005,\nhttp://engine.test:6878/ace/c/ih/1205.ts\n",
    # Init section, key, byte ranges, end list.
    '#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:6\n#EXT-X-MAP:URI="init.mp4"\n'
    '#EXT-X-KEY:METHOD=AES-128,URI="key.bin",IV=0x000102030405060708090a0b0c0d0e0f\n'
    "#EXT-X-BYTERANGE:1000@0\n#EXTINF:6.0,\nmedia.m4s\n#EXT-X-BYTERANGE:1000@1000\n"
    "#EXTINF:6.0,\nmedia.m4s\n#EXT-X-ENDLIST\n",
]

NOISE_LINES = st.sampled_from(
    [
        "#EXTINF:-1,",
        "#EXTINF:nan,",
        "#EXTINF:1e309,",
        "#EXT-X-MEDIA-SEQUENCE:-5",
        "#EXT-X-MEDIA-SEQUENCE:99999999999999999999",
        "#EXT-X-TARGETDURATION:0",
        "#EXT-X-TARGETDURATION:abc",
        "#EXT-X-STREAM-INF:BANDWIDTH=1",
        "#EXT-X-DISCONTINUITY",
        "#EXT-X-ENDLIST",
        "#EXT-X-KEY:METHOD=NONE",
        '#EXT-X-MAP:URI="',
        "#EXT-X-BYTERANGE:x@y",
        "http://evil.test/x.ts",
        "../../../etc/passwd",
        "\x00\x01",
        "",
    ]
)


@st.composite
def mutated_playlists(draw: st.DrawFn) -> str:
    """A real playlist with a few random edits: lines dropped, repeated, swapped, numbers changed,
    noise inserted, the text cut short."""
    lines = draw(st.sampled_from(REAL_PLAYLISTS)).splitlines()
    for _ in range(draw(st.integers(0, 6))):
        if not lines:
            break
        op = draw(st.sampled_from(["drop", "dup", "swap", "number", "noise", "text", "cut"]))
        # The header line is left alone mostly: garbage without it is refused at once.
        i = draw(st.integers(0 if len(lines) == 1 or draw(st.booleans()) else 1, len(lines) - 1))
        if op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "swap":
            j = draw(st.integers(min(i, 1), len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "number":
            value = str(draw(st.integers(-(10**20), 10**20) | st.floats(allow_nan=True)))
            lines[i] = re.sub(r"-?\d+(\.\d+)?", value, lines[i], count=1)
        elif op == "noise":
            lines.insert(i, draw(NOISE_LINES))
        elif op == "text":
            lines.insert(i, draw(st.text(max_size=40)))
        else:
            text = "\n".join(lines)
            return text[: draw(st.integers(0, len(text)))]
    return "\n".join(lines) + "\n"


# ---- pure functions -----------------------------------------------------------------------


@given(st.dictionaries(st.sampled_from(["id", "infohash", "pid", "x"]), st.text(max_size=50)))
def test_ids_are_validated(args: dict[str, str]) -> None:
    try:
        _, key = parse_stream_key(args)
    except BadRequest:
        return
    assert re.fullmatch(r"[0-9a-f]{40}", key)


@FUZZ
@given(mutated_playlists())
def test_mutated_playlists_parse_or_raise_playlist_error(text: str) -> None:
    try:
        playlist = parse_media_playlist(text, "http://engine.test:6878/ace/m/ih/s.m3u8")
    except PlaylistError:
        return
    for segment in playlist.segments:
        assert segment.duration >= 0
        assert segment.uri


# ---- the HTTP surface ---------------------------------------------------------------------


def _run(test: Callable[[], Awaitable[None]]) -> None:
    trio.run(test, clock=trio.testing.MockClock(autojump_threshold=0))


async def _asgi(app: App, method: str, path: str, query: bytes) -> int:
    scope: HTTPScope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("utf-8", "surrogateescape"),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"proxy.test"), (b"user-agent", b"fuzz")],
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 80),
        "extensions": {},
        "state": ConnectionState({}),
    }
    statuses: list[int] = []

    async def receive() -> Any:
        await trio.lowlevel.checkpoint()
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        await trio.lowlevel.checkpoint()
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    with trio.fail_after(120):
        await app(scope, receive, send)
    assert len(statuses) == 1
    return statuses[0]


PATHS = st.one_of(
    st.text(max_size=60).map(lambda text: "/" + text),
    st.tuples(st.text(max_size=45), st.text(max_size=10), st.text(max_size=16)).map(
        lambda parts: f"/ace/hls/{parts[0]}/{parts[1]}/{parts[2]}.ts"
    ),
    st.text(max_size=45).map(lambda text: f"/ace/hls/{text}/index.m3u8"),
    st.text(max_size=45).map(lambda text: f"/proxy/channels/{text}"),
    st.sampled_from(["/ace/getstream", "/ace/manifest.m3u8", "/proxy/status", "/healthz"]),
)
QUERIES = st.one_of(
    st.binary(max_size=80),
    st.builds(
        lambda name, value: name + b"=" + value,
        st.sampled_from([b"id", b"infohash", b"client", b"kind", b"id[]", b"%69d"]),
        st.one_of(st.binary(max_size=50), st.just(b"a" * 40), st.just(b"a" * 40 + b"%0A")),
    ),
)


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(["GET", "HEAD", "DELETE", "POST"]), PATHS, QUERIES)))
def test_no_request_is_answered_with_a_500(requests: list[tuple[str, str, bytes]]) -> None:
    async def main() -> None:
        async with harness() as h:
            app = h.app
            for method, path, query in requests:
                status = await _asgi(app, method, path, query)
                assert 200 <= status < 500 or status in (502, 503), (method, path, query, status)

    _run(main)


# ---- a channel fed garbage ----------------------------------------------------------------


class MutatingEngine(SimulatedEngine):
    """Serves each playlist reload either as it is or mutated, as ``mutate`` decides."""

    def __init__(self, mutate: Callable[[str], str]) -> None:
        super().__init__(small_media(), durations=[2.0], backlog=6.0)
        self.mutate = mutate

    async def handle(
        self, path: str, query: dict[str, str], scope: HTTPScope
    ) -> tuple[int, str, bytes]:
        status, content_type, body = await super().handle(path, query, scope)
        if path.startswith("/ace/m/") and status == 200:
            body = self.mutate(body.decode()).encode("utf-8", "surrogateescape")
        return status, content_type, body


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@FUZZ
@given(st.data(), st.floats(0.0, 1.0))
def test_a_channel_fed_mutated_playlists_never_breaks(data: st.DataObject, rate: float) -> None:
    rng = random.Random(data.draw(st.integers(0, 2**32)))
    mutations = [data.draw(mutated_playlists()) for _ in range(8)]

    def mutate(text: str) -> str:
        return rng.choice(mutations) if rng.random() < rate else text

    errors = _Errors()
    logging.getLogger("trioproxy").addHandler(errors)
    statuses: list[int] = []
    left: list[str] = []

    async def main() -> None:
        config = default_config(upstream_timeout=10.0, stall_timeout=15.0, failure_backoff=1.0)
        async with harness(config, engine=MutatingEngine(mutate)) as h:
            await _watch(h, statuses, until=60.0)
            channel = h.registry.get(CONTENT_A)
            if channel is not None:
                channel.stop("test over")
                await channel.closed.wait()
            left.extend(channel_tasks(h.registry))

    try:
        _run(main)
    finally:
        logging.getLogger("trioproxy").removeHandler(errors)
    assert [r.getMessage() for r in errors.records] == []
    assert left == []
    assert set(statuses) <= {200, 502, 503}, statuses


async def _watch(h: Harness, statuses: list[int], until: float) -> None:
    url = await h.start()
    while trio.current_time() < until:
        response = await h.client.get(url)
        statuses.append(response.status_code)
        for line in response.text.splitlines():
            if line.endswith(".ts"):
                statuses.append((await h.client.get(line)).status_code % 404 or 200)
        await trio.sleep(2.0)


@pytest.mark.parametrize("text", REAL_PLAYLISTS)
def test_real_playlists_parse(text: str) -> None:
    parse_media_playlist(text, "http://engine.test:6878/ace/m/ih/s.m3u8")
