"""Request heads of any shape on the lean path: never a 500, a hang or a crash.

Each example writes bytes to a fresh connection of the connection handler the accept loop runs
(in memory, on the autojump clock): the lean path answers what it takes, hands the rest to
Hypercorn, nothing is answered with a 500, and the connection ends once its client leaves.
"""

from __future__ import annotations

import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trioproxy.http.lean.parser import head_end, parse_head
from trioproxy.testing.harness import CONTENT_A, Harness, harness

HTTP_PATHS = ("lean",)

_HOT = [
    "/ace/getstream?id=" + CONTENT_A,
    "/ace/manifest.m3u8?id=" + CONTENT_A + "&format=hls",
    "/ace/hls/" + CONTENT_A + "/index.m3u8",
    "/ace/hls/" + CONTENT_A + "/0123456789abcdef0123456789abcdef/1.ts",
    "/ace/hls/" + CONTENT_A + ".r1/index.m3u8",
    "/sources/news.m3u8",
    "/healthz",
]
_HEADERS = [
    b"Host: proxy",
    b"Host: a\r\nHost: b",
    b"Connection: close",
    b"Connection: keep-alive, Upgrade\r\nUpgrade: websocket",
    b"Content-Length: 0",
    b"Content-Length: 5\r\n\r\nhello",
    b"Content-Length: x",
    b"Transfer-Encoding: chunked",
    b"Expect: 100-continue",
    b"X-Forwarded-For: 10.0.0.1",
    b"X-Playback-Session-Id: \xff\xfe",
    b" folded",
    b"Bad Header: x",
    b"X: " + b"y" * 20000,
]
heads = st.builds(
    lambda method, target, suffix, version, headers, eol, tail: (
        method
        + b" "
        + target.encode()
        + suffix
        + b" "
        + version
        + eol
        + eol.join(headers)
        + eol
        + eol
        + tail
    ),
    st.sampled_from([b"GET", b"HEAD", b"OPTIONS", b"POST", b"DELETE", b"G\x00T", b"get", b""]),
    st.sampled_from(_HOT),
    st.binary(max_size=12),
    st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.1 x", b"HTP/1.1"]),
    st.lists(st.sampled_from(_HEADERS), max_size=5),
    st.sampled_from([b"\r\n", b"\n"]),
    st.binary(max_size=64),
)


@given(st.binary(max_size=4096))
def test_parse_head_takes_any_bytes(data: bytes) -> None:
    end = head_end(data)
    head = parse_head(data[:end] if end is not None else data)
    if head is not None:
        assert head.path.startswith("/")


async def _write_and_read(h: Harness, data: bytes) -> bytes:
    assert h.wire is not None
    connection = await h.wire.open_raw()
    answer = b""
    await connection.write(data)
    with trio.move_on_after(10):  # virtual seconds: what the server answers at once
        while chunk := await connection.read(65536):
            answer += chunk
    await connection.aclose()
    # The client left: its connection ends on the server (a hang fails the example); Hypercorn,
    # once it has a connection, keeps its task until its keep-alive timeout (75 s).
    with trio.fail_after(80):
        while h.wire.serving:  # noqa: ASYNC110 (a count the test kit keeps)
            await trio.sleep(0.1)
    return answer


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(heads | st.binary(max_size=512), min_size=1, max_size=3))
def test_no_request_head_gets_a_500_a_hang_or_a_crash(requests: list[bytes]) -> None:
    async def main() -> bytes:
        async with harness(path="lean") as h:
            return await _write_and_read(h, b"".join(requests))

    answer = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert b" 500 " not in answer
