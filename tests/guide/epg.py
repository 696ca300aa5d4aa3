"""A fake EPG server and XMLTV guides for the guide's tests.

:class:`EpgServer` is an ``httpx.MockTransport`` handler: mount it in the harness
(``mounts={EPG_HOST: server.transport()}``). What it answers is set per test: a body (bytes or
an async generator of chunks, so that a 50 MB guide is never a 50 MB string), a status, headers.
It records when each request came (``trio.current_time()``).
"""

from __future__ import annotations

import gzip
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import trio

from trioproxy.config import Config
from trioproxy.config.channels import parse_channels_file
from trioproxy.testing.harness import default_config

ID_A = "0123456789abcdef0123456789abcdef01234567"
ID_B = "89abcdef0123456789abcdef0123456789abcdef"
CHANNELS = f"""\
name,stream,tvg-id
BBC One,{ID_A},bbc1.uk
Local news,infohash:{ID_B},Local.News
No guide,{ID_A},
"""
WANTED = ("bbc1.uk", "Local.News")
"""The tvg-ids of :data:`CHANNELS`, as it writes them."""
EPG_HOST = "http://epg.test"
EPG_URL = f"{EPG_HOST}/guide.xml?apikey=k33psecret"
NOW = time.time()


def xmltv_time(epoch: float) -> str:
    return time.strftime("%Y%m%d%H%M%S +0000", time.gmtime(epoch))


def programme(channel: str, start: float, title: str, length: float = 1800.0) -> str:
    return (
        f'<programme start="{xmltv_time(start)}" stop="{xmltv_time(start + length)}" '
        f'channel="{channel}"><title lang="en">{title}</title>'
        f'<desc lang="en">About {title} &amp; more.</desc></programme>\n'
    )


def guide_chunks(
    channels: dict[str, list[str]], *, others: int = 3, per_other: int = 4, start: float = NOW
) -> Iterator[str]:
    """An XMLTV guide, piece by piece: ``channels`` (id → titles, half-hour shows from
    ``start - 900``), then ``others`` channels nobody lists, ``per_other`` shows each."""
    yield '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE tv SYSTEM "xmltv.dtd">\n'
    yield '<tv generator-info-name="fake">\n'
    for number in range(others):
        name = f"<display-name>Other {number}</display-name>"
        yield f'<channel id="other{number}.tv">{name}</channel>\n'
    for channel in channels:
        yield f'<channel id="{channel}"><display-name>{channel} name</display-name></channel>\n'
    for channel, titles in channels.items():
        for index, title in enumerate(titles):
            yield programme(channel, start - 900 + 1800 * index, title)
        for number in range(others):
            yield "".join(
                programme(f"other{number}.tv", start + 1800 * n, f"Other show {n}")
                for n in range(per_other)
            )
    yield "</tv>\n"


def guide(channels: dict[str, list[str]], **kw: Any) -> bytes:
    return "".join(guide_chunks(channels, **kw)).encode()


GOOD = {"bbc1.uk": ["News", "Weather", "Film"], "LOCAL.NEWS": ["Local", "Sport"]}
"""What the test guides list of the listed channels (one id in another case)."""
NEWER = {"bbc1.uk": ["Breakfast", "Quiz"], "local.news": ["Morning"]}


def listed(document: bytes) -> dict[str, Any]:
    """What an XMLTV document lists: channel ids, and (channel, title) of each programme."""
    root = ET.fromstring(document)
    assert root.tag == "tv"
    return {
        "channels": [element.get("id") for element in root.iter("channel")],
        "programmes": [
            (element.get("channel"), element.findtext("title"))
            for element in root.iter("programme")
        ],
    }


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


Body = bytes | Callable[[], AsyncIterator[bytes]]


class _Connection(httpx.AsyncByteStream):
    """A body sent as ``chunks`` come, until the client closes the response (as closing a
    connection would), or ``chunks`` raises (as a connection that breaks)."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async with aclosing(self._chunks) as chunks:  # type: ignore[type-var]
            while not self._closed:
                try:
                    chunk = await anext(chunks)
                except StopAsyncIteration:
                    return
                yield chunk

    async def aclose(self) -> None:
        self._closed = True


@dataclass
class EpgServer:
    """The EPG server: answers every request with :attr:`status`, :attr:`headers`, :attr:`body`."""

    body: Body = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    requests: list[float] = field(default_factory=list)
    """When each request came."""

    def serve(self, body: Body, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.body, self.status, self.headers = body, status, headers or {}

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(trio.current_time())
        body = self.body
        if isinstance(body, bytes):
            return httpx.Response(self.status, headers=self.headers, content=body)
        return httpx.Response(self.status, headers=self.headers, stream=_Connection(body()))

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)


def slowly(data: bytes, *, piece: int, every: float) -> Callable[[], AsyncIterator[bytes]]:
    """A body of ``data`` sent ``piece`` bytes every ``every`` seconds."""

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(data), piece):
            await trio.sleep(every)
            yield data[start : start + piece]

    return chunks


def cut_after(
    data: bytes, size: int, error: Exception | None
) -> Callable[[], AsyncIterator[bytes]]:
    """A body of the first ``size`` bytes of ``data``, then ``error`` (None: it just ends)."""

    async def chunks() -> AsyncIterator[bytes]:
        await trio.lowlevel.checkpoint()
        yield data[:size]
        if error is not None:
            raise error

    return chunks


def epg_config(state_dir: Path, **changes: Any) -> Config:
    """The harness's settings with :data:`CHANNELS`, :data:`EPG_URL` and ``state_dir``."""
    values: dict[str, Any] = {
        "channels_file": parse_channels_file(CHANNELS),
        "epg_sources": (EPG_URL,),
        "state_dir": str(state_dir),
        "epg_refresh": 3600.0,
        "epg_timeout": 60.0,
    }
    values.update(changes)
    return default_config(**values)
