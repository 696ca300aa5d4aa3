"""An in-memory HLS origin behind a minimal engine: any playlist shape, served on virtual time.

Run the proxy in front of it with ``harness(origin_config(), origin=Origin(...))``
(:mod:`trioproxy.testing.harness`).

The engine hands out a ``playback_url`` on the origin, as a real engine (or any HLS server) would;
the origin serves the playlists it was given, answers any other path with deterministic bytes
(honouring ``Range``), follows the redirects it was told to make, and records what it was asked.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope

from trioproxy.config import Config
from trioproxy.http.asgi import send_response
from trioproxy.testing.harness import ENGINE_URL, ORIGIN_URL

__all__ = ["ORIGIN_URL", "Origin", "media_bytes", "origin_config"]


def media_bytes(path: str, size: int = 3000) -> bytes:
    """What the origin answers for ``path``: a repeated pattern naming the path."""
    pattern = (path + "|").encode()
    return (pattern * (size // len(pattern) + 1))[:size]


def variant_playlist(path: str) -> str:
    """The live media playlist the origin serves for any other ``.m3u8`` path."""
    stem = path.rsplit("/", 1)[-1].removesuffix(".m3u8")
    segments = "".join(f"#EXTINF:4.000,\n{stem}-{n}.ts\n" for n in range(40, 44))
    return f"#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:40\n{segments}"


@dataclass
class Origin:
    """Playlists by path (text, or a function of the request count); everything else is media."""

    playlists: dict[str, str | Callable[[int], str]] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)
    entry: str = "/live/index.m3u8"
    requests: list[str] = field(default_factory=list)
    playlist_loads: int = 0

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        byte_range = headers.get("range")
        self.requests.append(f"{path} {byte_range}" if byte_range else path)
        if path in self.redirects:
            location = self.redirects[path].encode()
            await send_response(send, 302, [(b"location", location)], b"")
            return
        if path in ("/ace/manifest.m3u8", "/ace/getstream"):
            query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
            session = query.get("pid", "s")
            payload = {
                "response": {
                    "playback_url": ORIGIN_URL + self.entry,
                    "stat_url": f"{ENGINE_URL}/ace/stat/{session}",
                    "command_url": f"{ENGINE_URL}/ace/cmd/{session}",
                    "playback_session_id": session,
                    "is_live": 1,
                },
                "error": None,
            }
            body = json.dumps(payload).encode()
            await send_response(send, 200, [(b"content-type", b"application/json")], body)
            return
        if path.startswith("/ace/cmd/"):
            body = json.dumps({"response": "ok", "error": None}).encode()
            await send_response(send, 200, [(b"content-type", b"application/json")], body)
            return
        if path in self.playlists:
            self.playlist_loads += 1
            playlist = self.playlists[path]
            text = playlist if isinstance(playlist, str) else playlist(self.playlist_loads)
            kind = [(b"content-type", b"application/vnd.apple.mpegurl")]
            await send_response(send, 200, kind, text.encode("utf-8"))
            return
        if "missing" in path:
            await send_response(send, 404, [], b"not found")
            return
        if path.endswith(".m3u8"):  # a variant or rendition of a master playlist
            kind = [(b"content-type", b"application/vnd.apple.mpegurl")]
            await send_response(send, 200, kind, variant_playlist(path).encode())
            return
        data = media_bytes(path)
        if byte_range is not None and byte_range.startswith("bytes="):
            first, _, last = byte_range.removeprefix("bytes=").partition("-")
            part = data[int(first) : int(last) + 1]
            span = f"bytes {first}-{last}/{len(data)}".encode()
            await send_response(send, 206, [(b"content-range", span)], part)
            return
        await send_response(send, 200, [(b"content-type", b"application/octet-stream")], data)


def origin_config(**changes: Any) -> Config:
    """The proxy's settings in front of an :class:`Origin`; no orchestrator unless one is named."""
    values: dict[str, Any] = {
        "engines": (ENGINE_URL,),
        # The origin is no engine: allowed by name. No stat_url reads or stall checks in the
        # fetch logs these tests compare (tests/channels/test_faults_engine.py covers both).
        "allow_upstream_hosts": ("origin.test",),
        "stat_interval": 3600.0,
        "stall_timeout": 3600.0,
        # No failover (one origin) and the thresholds in seconds alone, as these logs expect.
        "failover_max_switches": 0,
        "failover_playlist_targets": 0.0,
        "failover_stall_targets": 0.0,
        "hls_initial_segments": 2,
        "proxy_grace_period": 5.0,
        "hls_client_idle_timeout": 10.0,
        "upstream_timeout": 5.0,
        "hls_buffer_ready_timeout": 10.0,
        "playlist_thread_bytes": 1 << 30,  # read inline: these tests run on the virtual clock
    }
    values.update(changes)
    return Config(**values)
