"""A player that behaves like hls.js on a live playlist, and the bookkeeping of what it saw."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import trio

from .loadgen import Connection, split_url

__all__ = ["PlayerLog", "parse_playlist", "play", "random_content_id"]


@dataclass
class PlayerLog:
    """What every player saw, as (request start time, seconds) pairs per kind."""

    segments: list[tuple[float, float]] = field(default_factory=list)
    playlists: list[tuple[float, float]] = field(default_factory=list)
    errors: list[tuple[float, str]] = field(default_factory=list)
    first_segment: trio.Event = field(default_factory=trio.Event)

    def window(self, start: float, end: float) -> tuple[list[float], list[float], int]:
        """Segment and playlist latencies of requests started in [start, end), and errors."""
        segments = [s for t, s in self.segments if start <= t < end]
        playlists = [s for t, s in self.playlists if start <= t < end]
        errors = sum(1 for t, _ in self.errors if start <= t < end)
        return segments, playlists, errors


def random_content_id() -> str:
    return secrets.token_hex(20)


def parse_playlist(text: str) -> tuple[float, list[str]]:
    """(target duration, segment URIs) of a media playlist."""
    target = 2.0
    uris = []
    for line in text.splitlines():
        if line.startswith("#EXT-X-TARGETDURATION:"):
            target = float(line.split(":", 1)[1])
        elif line and not line.startswith("#"):
            uris.append(line)
    return target, uris


def _sequence(uri: str) -> int:
    return int(uri.rsplit("/", 1)[1].split(".", 1)[0])


async def play(base_url: str, content_id: str, until: float, log: PlayerLog) -> None:
    """Open the channel, then reload the playlist once per target duration and fetch each new
    segment once (starting at the newest), until ``until`` (``trio.current_time()``)."""
    host, port, _ = split_url(base_url)
    connection = Connection(host, port)
    try:
        began = trio.current_time()
        first = await connection.request("GET", f"/ace/getstream?id={content_id}")
        if first.status != 302:
            log.errors.append((began, f"getstream {first.status}"))
            return
        playlist_path = first.headers["location"]
        last: int | None = None
        while trio.current_time() < until:
            began = trio.current_time()
            response = await connection.request("GET", playlist_path)
            log.playlists.append((began, trio.current_time() - began))
            target = 2.0
            if response.status != 200:
                log.errors.append((began, f"playlist {response.status}"))
            else:
                target, uris = parse_playlist(response.body.decode())
                fresh = [u for u in uris if last is None or _sequence(u) > last]
                if last is None:
                    fresh = fresh[-1:]
                for uri in fresh:
                    asked = trio.current_time()
                    segment = await connection.request("GET", uri)
                    if segment.status != 200:
                        log.errors.append((asked, f"segment {segment.status}"))
                    else:
                        log.segments.append((asked, trio.current_time() - asked))
                        log.first_segment.set()
                    last = _sequence(uri)
            await trio.sleep_until(min(until, began + target))
    except (OSError, EOFError, trio.BrokenResourceError) as exc:
        log.errors.append((trio.current_time(), f"connection: {exc!r}"))
    finally:
        await connection.aclose()
