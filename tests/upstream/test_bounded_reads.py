"""Every upstream body is read to a bound, counted as it arrives, and left without a trace.

The hostile origin runs in memory behind a transport that streams with backpressure, so what
the origin sent is what the client read; ``gc.collect()`` after each case makes an abandoned
async generator show up as a ResourceWarning (an error here).
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import trio

from trioproxy.errors import EngineError, UpstreamRefused
from trioproxy.testing.hostile import HostileOrigin, streaming_transport
from trioproxy.upstream.engine import BodyTooLarge, Engine, EngineClient, ReadLimits
from trioproxy.upstream.policy import UpstreamPolicy, is_engine_api

HOSTILE = "http://hostile.test"
CHUNK = 64 << 10
LIMITS = ReadLimits(playlist=1 << 20, segment=2 << 20, init=64 << 10, key=1024)


@asynccontextmanager
async def client_to(
    origin: HostileOrigin, limits: ReadLimits = LIMITS
) -> AsyncIterator[EngineClient]:
    async with (
        streaming_transport(origin) as transport,
        httpx.AsyncClient(transport=transport) as http,
    ):
        yield EngineClient(http, limits)
    gc.collect()


async def test_an_endless_playlist_stops_at_the_bound() -> None:
    origin = HostileOrigin()
    async with client_to(origin) as client:
        with pytest.raises(BodyTooLarge) as caught:
            await client.get_text(HOSTILE + "/endless.m3u8")
    message = caught.value.message
    assert "hostile.test" in message
    assert str(LIMITS.playlist) in message
    assert "TRIOPROXY_MAX_PLAYLIST_BYTES" in message
    assert LIMITS.playlist < client.bytes_received <= LIMITS.playlist + CHUNK
    assert origin.sent["/endless.m3u8"] <= LIMITS.playlist + 2 * CHUNK
    assert origin.accept_encodings == ["identity"]


async def test_a_gzip_bomb_stops_at_the_bound_counted_decoded() -> None:
    origin = HostileOrigin()
    async with client_to(origin) as client:
        with pytest.raises(BodyTooLarge, match="decodes to larger than 1048576 bytes"):
            await client.get_text(HOSTILE + "/bomb.m3u8")
    # 256 MB decoded from what was sent: the bound was reached after a few KB of it.
    assert client.bytes_received < 16 << 10
    assert origin.sent["/bomb.m3u8"] < 32 << 10


async def test_a_gzip_playlist_sent_anyway_is_decoded() -> None:
    async with client_to(HostileOrigin()) as client:
        text, _ = await client.get_text(HOSTILE + "/good-gzip.m3u8")
    assert text.startswith("#EXTM3U\n")
    assert text.count("#EXTINF:2.000,\n/good/") == 3


async def test_a_dvr_playlist_of_10000_segments_fits_the_default_bound() -> None:
    origin = HostileOrigin(huge_segments=10_000)
    async with client_to(origin, ReadLimits()) as client:
        text, _ = await client.get_text(HOSTILE + "/huge.m3u8")
    assert text.count("#EXTINF") == 10_000
    assert len(text) < ReadLimits().playlist // 4


async def test_a_declared_oversized_body_is_refused_unread() -> None:
    origin = HostileOrigin()
    async with client_to(origin) as client:
        with pytest.raises(BodyTooLarge) as caught:
            await client.get_bytes(HOSTILE + "/oversized/1.ts")
    assert "segment of 2147483648 bytes is larger than 2097152 bytes" in caught.value.message
    assert "TRIOPROXY_MAX_SEGMENT_BYTES" in caught.value.message
    assert client.bytes_received == 0


@pytest.mark.parametrize(("kind", "setting"), [
    ("segment", "TRIOPROXY_MAX_SEGMENT_BYTES"),
    ("init", "TRIOPROXY_MAX_INIT_BYTES"),
    ("key", "TRIOPROXY_MAX_KEY_BYTES"),
])  # fmt: skip
async def test_an_endless_body_stops_at_its_kinds_bound(kind: str, setting: str) -> None:
    origin = HostileOrigin()
    async with client_to(origin) as client:
        with pytest.raises(BodyTooLarge, match=setting):
            await client.get_bytes(HOSTILE + "/endless/1.ts", kind=kind)  # type: ignore[arg-type]
    bound = LIMITS.of(kind)  # type: ignore[arg-type]
    assert bound < client.bytes_received <= bound + CHUNK


async def test_content_encoded_media_is_refused_as_such() -> None:
    origin = HostileOrigin()
    async with client_to(origin) as client:
        with pytest.raises(EngineError) as caught:
            await client.get_bytes(HOSTILE + "/gzip/1.ts")
    assert "content-encoded (gzip)" in caught.value.message
    assert "truncated" not in caught.value.message
    assert origin.accept_encodings == ["identity"]
    assert client.bytes_received == 0


async def test_a_range_of_an_endless_body_answered_whole_reads_only_to_the_range() -> None:
    origin = HostileOrigin()
    async with client_to(origin) as client:
        data = await client.get_bytes(HOSTILE + "/endless/1.ts", (188 * 1000, 188 * 10))
    assert data == (b"\x47" + b"\xff" * 187) * 10
    assert client.bytes_received <= 188 * 1010 + CHUNK


async def test_a_good_segment_is_read_whole() -> None:
    origin = HostileOrigin(segment_size=300_000)
    async with client_to(origin) as client:
        data = await client.get_bytes(HOSTILE + "/good/7.ts")
    assert len(data) == 300_000
    assert data.startswith(b"/good/7.ts|")
    assert client.bytes_received == 300_000


class _Exploding(httpx.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        raise AssertionError("a redirect's body was read")
        yield b""  # pragma: no cover

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


async def test_a_redirects_body_is_never_read() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/start.ts":
            return httpx.Response(302, headers={"Location": "/end.ts"}, stream=_Exploding())
        return httpx.Response(200, content=b"media")

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        assert await EngineClient(http).get_bytes(HOSTILE + "/start.ts") == b"media"


async def test_an_engines_api_answer_is_bounded() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"[" * (2 << 20))

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        client = EngineClient(http)
        with pytest.raises(EngineError, match="more than 1048576 bytes"):
            await client.open_session(Engine("http://engine.test:6878"), "content_id", "a" * 40)
    assert client.bytes_received <= 2 << 20


def test_the_engines_api_is_recognised_however_spelled() -> None:
    engine = "http://engine.test:6878"
    for path in (
        "/ace/manifest.m3u8?id=x&pid=y",
        "/ace/getstream?id=x",
        "/ace/cmd/k/s?method=stop",
        "/ACE/CMD/k/s",
        "/ace/%63md/k/s",
        "//ace//manifest.m3u8",
        "/ace/c/../cmd/k/s",
        "/ace/manifest.m3u8/",
        "/server/api?method=x",
        "/webui/api/service?method=get_version",
    ):
        assert is_engine_api(engine + path), path
    for path in ("/ace/c/s/12.ts", "/ace/m/k/s.m3u8", "/live/cmd.ts", "/ace/commander.ts"):
        assert not is_engine_api(engine + path), path


async def test_every_engine_api_uri_of_the_hostile_playlist_is_refused() -> None:
    origin = HostileOrigin(engine_url="http://engine.test:6878", sessions=[("k", "s")])
    text = origin.engine_api_playlist().decode()
    uris = [line for line in text.splitlines() if line and not line.startswith("#")]
    async with httpx.AsyncClient() as http:
        # Even with every host allowed, and on the source's own host.
        view = UpstreamPolicy(http, ["*"]).for_source(HOSTILE + "/engine-api.m3u8")
        for uri in uris:
            url = str(httpx.URL(HOSTILE + "/").join(uri))
            with pytest.raises(UpstreamRefused, match="engine's API"):
                await view.get_bytes(url)
    assert view.refused == len(uris)
