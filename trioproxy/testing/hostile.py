"""A hostile HLS origin: playlists and segments built to exhaust or misuse the proxy.

:class:`HostileOrigin` is an ASGI app (serve it with Hypercorn on ``127.0.0.1:0``, or in memory
through :func:`streaming_transport`). Each playlist path is one attack; its segments live under
a path of their own:

==========================  ====================================================================
``/good.m3u8``              a well-behaved live playlist (2 s segments, ``/good/<n>.ts``)
``/good-gzip.m3u8``         the same, gzip-encoded although identity was asked for
``/endless.m3u8``           a playlist body that never ends
``/huge.m3u8``              a live playlist of ``huge_segments`` segments (a DVR window)
``/bomb.m3u8``              gzip-encoded: ``bomb_bytes`` decoded (256 MB) from ~1/1000 of that
``/endless-segment.m3u8``   segments whose bodies never end (no Content-Length)
``/oversized.m3u8``         segments of ``oversized_bytes`` (2 GB, Content-Length declared)
``/gzip-segments.m3u8``     segments sent gzip-encoded although identity was asked for
``/engine-api.m3u8``        "segments" that are the engine's API: session opens on
                            ``engine_url`` and ``/ace/cmd/<id>?method=stop`` for ``sessions``
``/elsewhere.m3u8``         segments on ``elsewhere_url``, a host no one allowed
==========================  ====================================================================

It records every request (path and ``Accept-Encoding``) and counts the body bytes it sent per
path, so tests can tell how much the proxy read. Time is ``trio.current_time()``: it runs on the
virtual clock in tests.
"""

from __future__ import annotations

import gzip
import zlib
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope

from ..http.asgi import send_response, serve_lifespan

__all__ = ["HostileOrigin", "StreamingASGITransport", "streaming_transport"]

SEGMENT_SECONDS = 2.0
_PLAYLIST = "application/vnd.apple.mpegurl"


def _live(uris: list[str], first: int) -> bytes:
    rows = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:2"]
    rows.append(f"#EXT-X-MEDIA-SEQUENCE:{first}")
    for uri in uris:
        rows += [f"#EXTINF:{SEGMENT_SECONDS:.3f},", uri]
    return ("\n".join(rows) + "\n").encode()


@dataclass
class HostileOrigin:
    engine_url: str = "http://127.0.0.1:6878"
    elsewhere_url: str = "http://elsewhere.test"
    sessions: list[tuple[str, str]] = field(default_factory=list)
    """``(key, playback_session_id)`` of other players' engine sessions (``/proxy/status``)."""
    segment_size: int = 4000
    huge_segments: int = 10_000
    oversized_bytes: int = 2 << 30
    bomb_bytes: int = 256 << 20
    chunk_size: int = 64 << 10
    list_size: int = 3
    requests: list[str] = field(default_factory=list)
    accept_encodings: list[str] = field(default_factory=list)
    sent: Counter[str] = field(default_factory=Counter)
    """Body bytes sent, by path (what the proxy read, give or take a chunk in flight)."""

    def sent_under(self, prefix: str) -> int:
        return sum(count for path, count in self.sent.items() if path.startswith(prefix))

    def requests_under(self, prefix: str) -> int:
        return sum(1 for path in self.requests if path.startswith(prefix))

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path = scope["path"]
        headers = dict(scope["headers"])
        self.requests.append(path)
        self.accept_encodings.append(headers.get(b"accept-encoding", b"").decode("latin-1"))
        async with trio.open_nursery() as nursery:
            # A server may go on accepting a body the client left: stop when it says so.
            nursery.start_soon(_until_disconnect, receive, nursery.cancel_scope)
            await self._answer(path, send)
            nursery.cancel_scope.cancel()

    def _newest(self) -> int:
        """The newest segment number: one more every segment duration."""
        return int(trio.current_time() // SEGMENT_SECONDS) + self.list_size

    def _window(self, prefix: str) -> bytes:
        last = self._newest()
        first = max(0, last - self.list_size + 1)
        return _live([f"{prefix}/{n}.ts" for n in range(first, last + 1)], first)

    async def _answer(self, path: str, send: ASGISendCallable) -> None:
        kind = [(b"content-type", _PLAYLIST.encode())]
        if path == "/good.m3u8":
            await self._whole(send, path, kind, self._window("/good"))
        elif path == "/good-gzip.m3u8":
            encoded = [*kind, (b"content-encoding", b"gzip")]
            await self._whole(send, path, encoded, gzip.compress(self._window("/good")))
        elif path == "/endless.m3u8":
            await self._endless(send, path, kind, self._window("/good"), b"#EXT-X-HOSTILE\n")
        elif path == "/huge.m3u8":
            first = self._newest()
            numbers = range(first, first + self.huge_segments)
            uris = [f"/good/{n}.ts?token={n:040d}" for n in numbers]
            await self._whole(send, path, kind, _live(uris, first))
        elif path == "/bomb.m3u8":
            await self._bomb(send, path)
        elif path == "/endless-segment.m3u8":
            await self._whole(send, path, kind, self._window("/endless"))
        elif path == "/oversized.m3u8":
            await self._whole(send, path, kind, self._window("/oversized"))
        elif path == "/gzip-segments.m3u8":
            await self._whole(send, path, kind, self._window("/gzip"))
        elif path == "/engine-api.m3u8":
            await self._whole(send, path, kind, self.engine_api_playlist())
        elif path == "/elsewhere.m3u8":
            await self._whole(send, path, kind, self._window(self.elsewhere_url + "/seg"))
        elif path.startswith("/endless/"):
            await self._endless(send, path, [], b"", b"\x47" + b"\xff" * 187)
        elif path.startswith("/oversized/"):
            await self._oversized(send, path)
        elif path.startswith("/gzip/"):
            body = gzip.compress(self._segment(path))
            await self._whole(send, path, [(b"content-encoding", b"gzip")], body)
        elif path.startswith("/good/"):
            await self._whole(send, path, [(b"content-type", b"video/mp2t")], self._segment(path))
        else:
            await send_response(send, 404, [], b"not found")

    def _segment(self, path: str) -> bytes:
        pattern = (path + "|").encode()
        return (pattern * (self.segment_size // len(pattern) + 1))[: self.segment_size]

    def engine_api_playlist(self) -> bytes:
        """A playlist whose "segments" are the engine's own API: session opens and stops."""
        engine = self.engine_url
        uris = [f"{engine}/ace/manifest.m3u8?id={'f' * 40}&pid=hostile-{n}" for n in range(3)]
        uris.append(f"{engine}/ace/getstream?id={'f' * 40}&format=json&pid=hostile-ts")
        uris += [f"{engine}/ace/cmd/{key}/{sid}?method=stop" for key, sid in self.sessions]
        uris.append("/ace/manifest.m3u8?id=" + "f" * 40)  # the origin itself, if it is an engine
        uris.append("/ACE/%63md/x/y?method=stop")  # spelled otherwise
        return _live(uris, 0)

    async def _start(self, send: ASGISendCallable, headers: list[tuple[bytes, bytes]]) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": headers})

    async def _chunk(self, send: ASGISendCallable, path: str, body: bytes, more: bool) -> None:
        await send({"type": "http.response.body", "body": body, "more_body": more})
        self.sent[path] += len(body)

    async def _whole(
        self, send: ASGISendCallable, path: str, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        await self._start(send, [*headers, (b"content-length", str(len(body)).encode())])
        for offset in range(0, len(body), self.chunk_size):
            await self._chunk(send, path, body[offset : offset + self.chunk_size], True)
        await self._chunk(send, path, b"", False)

    async def _endless(
        self,
        send: ASGISendCallable,
        path: str,
        headers: list[tuple[bytes, bytes]],
        head: bytes,
        unit: bytes,
    ) -> None:
        await self._start(send, headers)
        chunk = unit * (self.chunk_size // len(unit))
        await self._chunk(send, path, head, True)
        while True:
            await self._chunk(send, path, chunk, True)

    async def _oversized(self, send: ASGISendCallable, path: str) -> None:
        size = self.oversized_bytes
        await self._start(send, [(b"content-length", str(size).encode())])
        chunk = b"\x47" * self.chunk_size
        while size > 0:
            await self._chunk(send, path, chunk[:size], size > len(chunk))
            size -= len(chunk)

    async def _bomb(self, send: ASGISendCallable, path: str) -> None:
        """gzip of a playlist head and ``bomb_bytes`` of newlines, compressed as it is sent."""
        await self._start(
            send, [(b"content-type", _PLAYLIST.encode()), (b"content-encoding", b"gzip")]
        )
        deflate = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        pending = deflate.compress(b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n")
        step = b"\n" * (1 << 20)
        for _ in range(self.bomb_bytes // len(step)):
            pending += deflate.compress(step) + deflate.flush(zlib.Z_SYNC_FLUSH)
            if len(pending) >= 1024:
                await self._chunk(send, path, pending, True)
                pending = b""
        await self._chunk(send, path, pending + deflate.flush(), False)


async def _until_disconnect(receive: ASGIReceiveCallable, scope: trio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


# ---- an in-memory transport that streams ------------------------------------------------------


class _Body(httpx.AsyncByteStream):
    """The response body, chunk by chunk as the app sends it; closing it cancels the app."""

    def __init__(self, chunks: trio.MemoryReceiveChannel[bytes], app: trio.CancelScope) -> None:
        self._chunks = chunks
        self._app = app
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            if self._closed:
                raise httpx.ReadError("the response was closed")
            try:
                chunk = await self._chunks.receive()
            except trio.EndOfChannel:
                return
            except trio.ClosedResourceError:
                raise httpx.ReadError("the response was closed") from None
            yield chunk

    async def aclose(self) -> None:
        self._closed = True
        self._chunks.close()
        self._app.cancel()
        await trio.lowlevel.checkpoint()


class StreamingASGITransport(httpx.AsyncBaseTransport):
    """An ASGI app as an httpx transport that streams, with backpressure: the app's ``send``
    waits until the client reads. (httpx's ``ASGITransport`` collects the whole body first,
    which an endless body never lets finish.) Each request runs the app in ``nursery``."""

    def __init__(self, app: Any, nursery: trio.Nursery) -> None:
        self._app = app
        self._nursery = nursery

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "headers": [(k.lower(), v) for k, v in request.headers.raw],
            "scheme": request.url.scheme,
            "path": request.url.path,
            "raw_path": request.url.raw_path.split(b"?")[0],
            "query_string": request.url.query,
            "server": (request.url.host, request.url.port),
            "client": ("127.0.0.1", 1234),
            "root_path": "",
        }
        chunks_send, chunks_receive = trio.open_memory_channel[bytes](0)
        started = trio.Event()
        disconnected = trio.Event()
        answer: dict[str, Any] = {"status": 500, "headers": []}
        scope_app = trio.CancelScope()
        requested = False

        async def receive() -> dict[str, Any]:
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await disconnected.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
                answer["headers"] = list(message.get("headers", []))
                started.set()
            elif message["type"] == "http.response.body":
                body = message.get("body", b"")
                try:
                    if body:
                        await chunks_send.send(body)
                    if not message.get("more_body", False):
                        chunks_send.close()
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    disconnected.set()
                    await trio.sleep_forever()  # the client left: wait to be cancelled

        async def run() -> None:
            with scope_app, chunks_send:
                try:
                    await self._app(scope, receive, send)
                finally:
                    started.set()
                    disconnected.set()

        self._nursery.start_soon(run)
        await started.wait()
        return httpx.Response(
            answer["status"], headers=answer["headers"], stream=_Body(chunks_receive, scope_app)
        )


@asynccontextmanager
async def streaming_transport(app: Any) -> AsyncIterator[StreamingASGITransport]:
    """A :class:`StreamingASGITransport` to ``app``; apps still answering are cancelled on exit."""
    async with trio.open_nursery() as nursery:
        yield StreamingASGITransport(app, nursery)
        nursery.cancel_scope.cancel()
