"""Real servers and real media for end-to-end tests: a live HLS origin written by ffmpeg, a static
file server in front of it that also speaks the engine's session API, and the proxy on a socket.

Everything listens on 127.0.0.1 port 0 and runs on the real clock.
"""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope

from trioproxy.channels.registry import Registry
from trioproxy.config import Config
from trioproxy.http.asgi import send_response, serve_lifespan
from trioproxy.http.connections import Connections
from trioproxy.http.server import serve_http
from trioproxy.service import Heard, Running, hypercorn_config, serve

__all__ = [
    "Decoder",
    "LiveKind",
    "ProxyServer",
    "StaticOrigin",
    "ffmpeg_decoding",
    "ffmpeg_live_hls",
    "guarded_http",
    "proxy_server",
    "running_proxy",
    "running_service",
    "serve_asgi",
    "service_before",
]

LiveKind = Literal["mpegts", "fmp4", "aes128", "master"]
"""MPEG-TS, fragmented MP4, AES-128 encrypted MPEG-TS, or a master playlist whose audio is a
separate rendition (``master.m3u8``)."""
_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".ts": "video/mp2t",
    ".m4s": "video/mp4",
    ".mp4": "video/mp4",
    ".key": "application/octet-stream",
}


@dataclass
class StaticOrigin:
    """Files from ``root`` by path, and the engine's session API pointing at ``playlist``."""

    root: Path
    playlist: str = "/hls/index.m3u8"
    requests: list[str] = field(default_factory=list)

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        self.requests.append(path)
        host = dict(scope["headers"]).get(b"host", b"").decode()
        if path in ("/ace/manifest.m3u8", "/ace/getstream"):
            body = json.dumps(
                {
                    "response": {
                        "playback_url": f"http://{host}{self.playlist}",
                        "stat_url": f"http://{host}/ace/stat/x",
                        "command_url": f"http://{host}/ace/cmd/x",
                        "playback_session_id": "origin",
                        "is_live": 1,
                    },
                    "error": None,
                }
            ).encode()
            await send_response(send, 200, [(b"content-type", b"application/json")], body)
            return
        if path.startswith("/ace/cmd/"):
            body = b'{"response": "ok", "error": null}'
            await send_response(send, 200, [(b"content-type", b"application/json")], body)
            return
        relative = path.removeprefix("/hls/")
        file = trio.Path(self.root) / relative
        if relative == path or "/" in relative or relative.startswith("."):
            await send_response(send, 404, [], b"not found")
            return
        try:
            data = await file.read_bytes()
        except OSError:
            await send_response(send, 404, [], b"not found")
            return
        kind = _TYPES.get(Path(relative).suffix, "application/octet-stream").encode()
        await send_response(send, 200, [(b"content-type", kind)], data)


@asynccontextmanager
async def serve_asgi(app: Any) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 port 0; yields its base URL."""
    config = HypercornConfig()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = 1.0
    done = trio.Event()
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(_serve, app, config, done)
        yield urls[0]
        done.set()


async def _serve(
    app: Any, config: HypercornConfig, done: trio.Event, task_status: trio.TaskStatus[Any]
) -> None:
    await hypercorn_serve(app, config, shutdown_trigger=done.wait, task_status=task_status)


@asynccontextmanager
async def running_service(
    config: Config, *, stop_within: float = 20.0, heard: Heard | None = None
) -> AsyncIterator[str]:
    """The real service (as ``trioproxy serve`` runs it) with ``config``; yields its first bound
    URL. On exit it is shut down as SIGTERM shuts it down, and must be done within
    ``stop_within`` seconds. ``heard`` is told every request's path."""
    async with running_proxy(config, stop_within=stop_within, heard=heard) as running:
        yield running.url


@asynccontextmanager
async def running_proxy(
    config: Config, *, stop_within: float = 20.0, heard: Heard | None = None
) -> AsyncIterator[Running]:
    """:func:`running_service`, yielding the :class:`~trioproxy.service.Running` proxy."""
    stop, stopped = trio.Event(), trio.Event()

    async def run(*, task_status: trio.TaskStatus[Running]) -> None:
        await serve(config, shutdown_trigger=stop.wait, heard=heard, task_status=task_status)
        stopped.set()

    async with trio.open_nursery() as nursery:
        running = await nursery.start(run)
        try:
            yield running
        finally:
            stop.set()
            with trio.fail_after(stop_within):
                await stopped.wait()
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def service_before(
    engine: Any, *, stop_within: float = 20.0, **changes: Any
) -> AsyncIterator[str]:
    """:func:`running_service` in front of ``engine`` (an ASGI app, a simulated engine say,
    served on 127.0.0.1 port 0), with ``changes`` to its default config; yields its base URL."""
    async with serve_asgi(engine) as engine_url:
        config = Config(bind="127.0.0.1:0", engines=(engine_url,)).replace(**changes)
        async with running_service(config, stop_within=stop_within) as url:
            yield url


@asynccontextmanager
async def guarded_http(app: Any, connections: Connections) -> AsyncIterator[int]:
    """``app`` on 127.0.0.1 port 0 behind the service's own accept loop and its connection
    guards (``connections``); yields the port."""
    stop = trio.Event()
    async with trio.open_nursery() as nursery:

        async def run(*, task_status: trio.TaskStatus[list[str]]) -> None:
            await serve_http(
                app,
                hypercorn_config("127.0.0.1:0"),
                connections,
                shutdown_trigger=stop.wait,
                task_status=task_status,
            )

        binds = await nursery.start(run)
        yield int(binds[0].rsplit(":", 1)[1])
        stop.set()


@dataclass
class ProxyServer:
    url: str
    registry: Registry
    requests: list[str]


@asynccontextmanager
async def proxy_server(config: Config) -> AsyncIterator[ProxyServer]:
    """The service on ``config`` (bound to 127.0.0.1 port 0); records the path of every request
    it answers."""
    requests: list[str] = []
    async with running_proxy(config.replace(bind="127.0.0.1:0"), heard=requests.append) as running:
        yield ProxyServer(running.url, running.registry, requests)


def ffmpeg_command(out: Path, kind: LiveKind, segment_seconds: float) -> list[str]:
    command = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
        "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
        "-g", "25", "-keyint_min", "25", "-sc_threshold", "0",
        "-c:a", "aac", "-b:a", "64k",
        "-f", "hls", "-hls_time", str(segment_seconds), "-hls_list_size", "6",
        "-hls_flags", "delete_segments+independent_segments+temp_file",
    ]  # fmt: skip
    if kind == "master":
        command += ["-map", "0:v", "-map", "1:a", "-master_pl_name", "master.m3u8"]
        command += ["-var_stream_map", "v:0,agroup:aud a:0,agroup:aud,default:yes"]
        command += ["-hls_segment_filename", str(out / "stream%v_%d.ts")]
        return [*command, str(out / "stream%v.m3u8")]
    if kind == "fmp4":
        command += ["-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", "init.mp4"]
        command += ["-hls_segment_filename", str(out / "seg%d.m4s")]
    else:
        command += ["-hls_segment_filename", str(out / "seg%d.ts")]
    if kind == "aes128":
        (out / "enc.key").write_bytes(bytes(range(16)))
        (out / "key.info").write_text(f"enc.key\n{out / 'enc.key'}\n")
        command += ["-hls_key_info_file", str(out / "key.info")]
    return [*command, str(out / "index.m3u8")]


@asynccontextmanager
async def ffmpeg_live_hls(
    out: Path, kind: LiveKind, segment_seconds: float = 1.0
) -> AsyncIterator[trio.Process]:
    """ffmpeg writing a live HLS stream into ``out`` until the block ends."""
    async with trio.open_nursery() as nursery:
        process: trio.Process = await nursery.start(
            _run_process, ffmpeg_command(out, kind, segment_seconds)
        )
        try:
            yield process
        finally:
            process.terminate()


async def _run_process(command: list[str], task_status: trio.TaskStatus[trio.Process]) -> None:
    await trio.run_process(
        command,
        stdin=subprocess.DEVNULL,
        check=False,
        task_status=task_status,
    )


@dataclass
class Decoder:
    """ffmpeg decoding a stream to nothing (``-f null``), as a player that never stops: what it
    decoded, and when, from its ``-progress`` reports (every half second)."""

    url: str
    fps: float
    """The stream's frame rate: decoded seconds are decoded frames over it (timestamps jump
    at a discontinuity, frames do not)."""
    samples: list[tuple[float, int]] = field(default_factory=list)
    """(when, frames decoded so far), in order."""
    exited: int | None = None
    """ffmpeg's exit status, had it stopped on its own before the block ended."""
    errors: str = ""
    """What ffmpeg wrote on stderr (``-v error``)."""

    def decoded(self, at: float) -> float:
        """Seconds of media decoded by ``at`` (as last reported then)."""
        frames = [count for when, count in self.samples if when <= at]
        return (frames[-1] if frames else 0) / self.fps

    @property
    def started_at(self) -> float | None:
        """When the first decoded frame was reported."""
        return next((when for when, count in self.samples if count), None)


@asynccontextmanager
async def ffmpeg_decoding(url: str, fps: float) -> AsyncIterator[Decoder]:
    """ffmpeg playing ``url`` (HLS or MPEG-TS) until the block ends, reporting as it goes."""
    decoder = Decoder(url, fps)
    command = [
        "ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-nostats",
        "-progress", "pipe:1", "-stats_period", "0.5",
        "-i", url, "-map", "0:v", "-fps_mode", "passthrough", "-f", "null", "-",
    ]  # fmt: skip
    process = await trio.lowlevel.open_process(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout is not None
    assert process.stderr is not None
    stdout, stderr = process.stdout, process.stderr

    async def progress() -> None:
        rest = b""
        while chunk := await stdout.receive_some(65536):
            *lines, rest = (rest + chunk).split(b"\n")
            for line in lines:
                if line.startswith(b"frame="):
                    decoder.samples.append((trio.current_time(), int(line[6:])))

    async def errors() -> None:
        while chunk := await stderr.receive_some(65536):
            decoder.errors += chunk.decode(errors="replace")

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(progress)
            nursery.start_soon(errors)
            try:
                yield decoder
            finally:
                decoder.exited = process.poll()
                process.terminate()
    finally:
        with trio.CancelScope(shield=True):
            await process.wait()
        await stdout.aclose()
        await stderr.aclose()
