"""The proxy in memory: a :class:`~trioproxy.channels.registry.Registry` and the HTTP app, reached
through ``httpx.ASGITransport``, in front of the fault engine (a simulated engine inside it, no
faults unless asked) or an HLS origin, and the fake orchestrator. No sockets, so everything runs
on whatever clock the Trio run has: tests use the autojump clock, and "an engine that takes 3 s"
costs no real time.

Any host the harness does not serve is refused as a connection error: nothing ever reaches the
real network.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

import httpcore
import httpx
import trio
import trio.testing
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.utils import wrap_app

from .. import service
from ..channels.channel import Channel
from ..channels.registry import Registry
from ..cluster import Leases
from ..config import Config
from ..http.server import connection_handler
from ..upstream.liveness import Connect
from ..upstream.session import host_port
from .asgi_stream import App, StreamingASGITransport
from .engine import SimulatedEngine, is_stream_path
from .faults import FaultyEngine
from .orchestrator import FakeOrchestrator
from .players import HttpxGetter, Player, PlayerLog
from .wire import WireTransport

__all__ = [
    "CONTENT_A",
    "CONTENT_B",
    "DEFAULT_PATH",
    "ENGINE_URL",
    "ORCHESTRATOR_URL",
    "ORIGIN_URL",
    "PROXY_URL",
    "App",
    "Harness",
    "HttpPath",
    "RefusingTransport",
    "asgi_transport",
    "channel_tasks",
    "connect_error",
    "default_config",
    "engine_sockets",
    "harness",
    "refused_error",
    "small_media",
]

ENGINE_URL = "http://engine.test:6878"
ORCHESTRATOR_URL = "http://orchestrator.test"
ORIGIN_URL = "http://origin.test"
PROXY_URL = "http://proxy.test"

HttpPath = Literal["asgi", "lean"]
DEFAULT_PATH: HttpPath = "asgi"
"""What :func:`harness` reaches the proxy through unless told: ``asgi``, the app through
``httpx.ASGITransport``; ``lean``, HTTP/1.1 bytes into the connection handler the accept loop
runs (the lean path, then Hypercorn and the app), over in-memory connections
(:class:`~.wire.WireTransport`). A test suite may switch it for all its tests."""

CONTENT_A = "a" * 40
CONTENT_B = "b" * 40


def small_media(count: int = 64, size: int = 1000) -> list[bytes]:
    """Distinct fake segment payloads (for runs that never decode media); no loop within 64."""
    return [bytes([n]) * size for n in range(count)]


def default_config(**changes: Any) -> Config:
    """The harness's configuration: its engine and orchestrator, a short start and idle time.

    HLS_INITIAL_SEGMENTS 2, PROXY_GRACE_PERIOD 5 s, HLS_CLIENT_IDLE_TIMEOUT 10 s; playlists
    read inline whatever their size (``TRIOPROXY_PLAYLIST_THREAD_BYTES``), since a virtual clock
    jumps ahead while a worker thread works; ``changes`` override any field.
    """
    values: dict[str, Any] = {
        "engines": (ENGINE_URL,),
        "orchestrator_url": ORCHESTRATOR_URL,
        "hls_initial_segments": 2,
        "proxy_grace_period": 5.0,
        "hls_client_idle_timeout": 10.0,
        "playlist_thread_bytes": 1 << 30,
    }
    values.update(changes)
    return Config(**values)


def connect_error(request: httpx.Request, cause: OSError) -> httpx.ConnectError:
    """The error httpx raises for ``request`` when its connect fails with ``cause``, chained as
    httpx and httpcore chain it (``socket.gaierror`` for a name that does not resolve, an
    ``ssl.SSLError`` for TLS, ...)."""
    inner = httpcore.ConnectError(cause)
    inner.__context__ = cause
    error = httpx.ConnectError(str(cause), request=request)
    error.__cause__ = inner
    return error


def refused_error(request: httpx.Request) -> httpx.ConnectError:
    """The error httpx raises for ``request`` when nothing listens at the host: every address
    tried refused the connection (``trio.open_tcp_stream`` groups the attempts' errors)."""
    message = f"all attempts to connect to {request.url.host}:{request.url.port} failed"
    attempts = ExceptionGroup(message, [ConnectionRefusedError(111, "Connection refused")])
    cause = OSError(message)
    cause.__cause__ = attempts
    return connect_error(request, cause)


class RefusingTransport(httpx.AsyncBaseTransport):
    """Wraps a transport; while ``refusing`` is set, every request fails to connect.

    It also stands for the host's TCP port, for the engine watch (:func:`engine_sockets`):
    :meth:`accept` opens an idle in-memory connection, and setting ``refusing`` closes every
    one open, as a process that dies closes its sockets.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self._refusing = False
        self.refused = 0
        self.refused_paths: list[tuple[float, str]] = []
        """When each refused request was made (``trio.current_time()``), and its path."""
        self.accepted: list[float] = []
        """When each connection :meth:`accept` opened was made."""
        self._open: list[trio.testing.MemorySendStream] = []

    @property
    def refusing(self) -> bool:
        return self._refusing

    @refusing.setter
    def refusing(self, value: bool) -> None:
        self._refusing = value
        if value:
            if isinstance(self.inner, StreamingASGITransport):
                self.inner.reset()  # responses still streaming break, as on a dead host
            for end in self._open:
                end.close()
            self._open.clear()

    async def accept(self) -> trio.abc.Stream:
        """An idle connection to the host; ``ConnectionRefusedError`` while ``refusing``."""
        await trio.lowlevel.checkpoint()
        if self._refusing:
            raise ConnectionRefusedError(111, "Connection refused")
        ours, theirs = trio.testing.memory_stream_pair()
        self._open.append(theirs.send_stream)
        self.accepted.append(trio.current_time())
        return ours

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.refusing:
            self.refused += 1
            self.refused_paths.append((trio.current_time(), request.url.path))
            await trio.lowlevel.checkpoint()
            raise refused_error(request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def engine_sockets(hosts: dict[str, RefusingTransport]) -> Connect:
    """A ``connect`` for :class:`~trioproxy.channels.registry.Registry`: the engine watch's
    connections to each URL's host and port go to its transport's :meth:`~RefusingTransport.
    accept`; any other address is unreachable (which proves nothing to the watch)."""
    ports: dict[tuple[str, int], RefusingTransport] = {}
    for url, transport in hosts.items():
        target = host_port(url)
        assert target is not None, url
        ports[target] = transport

    async def connect(host: str, port: int) -> trio.abc.Stream:
        transport = ports.get((host.lower(), port))
        if transport is None:
            await trio.lowlevel.checkpoint()
            raise OSError(113, f"no route to {host}:{port}")
        return await transport.accept()

    return connect


def asgi_transport(app: App) -> httpx.ASGITransport:
    """An in-memory transport to ``app`` (httpx types ASGI apps loosely; ours use Hypercorn's)."""
    return httpx.ASGITransport(app)  # type: ignore[arg-type]


def channel_tasks(registry: Registry) -> list[str]:
    """Names of the channel tasks still running under the registry."""
    return [name for name in registry.task_names if name.startswith("channel ")]


@dataclass
class Harness:
    """A proxy wired to an engine (or an origin) and a fake orchestrator, all in memory."""

    config: Config
    engine: FaultyEngine
    """The fault engine at :data:`ENGINE_URL`; with an ``origin``, the origin serves there."""
    engine_transport: RefusingTransport
    """What serves :data:`ENGINE_URL`; set ``refusing`` for an engine that is gone."""
    orchestrator: FakeOrchestrator
    orchestrator_transport: RefusingTransport
    registry: Registry
    client: httpx.AsyncClient
    """The proxy's HTTP API, as a player or an operator reaches it."""
    app: App
    """The proxy's ASGI app, which ``client`` reaches."""
    origin: App | None = None
    wire: WireTransport | None = None
    """What ``client`` goes through on the ``lean`` path (raw connections: ``open_raw``)."""

    @property
    def sim(self) -> SimulatedEngine:
        """The simulated engine inside the fault engine."""
        return self.engine.inner

    async def start(self, key: str = CONTENT_A) -> str:
        """``/ace/getstream`` for ``key``: the playlist URL the player is sent to."""
        response = await self.client.get("/ace/getstream", params={"id": key})
        if response.status_code != 302:
            raise AssertionError(f"getstream answered {response.status_code}: {response.text}")
        return str(response.headers["location"])

    async def open_playlist(self, key: str = CONTENT_A, **params: str) -> httpx.Response:
        """What a player does first: ``/ace/getstream``, then the URL it was redirected to."""
        response = await self.client.get("/ace/getstream", params={"id": key, **params})
        if response.status_code != 302:
            raise AssertionError(f"getstream answered {response.status_code}: {response.text}")
        return await self.client.get(response.headers["location"])

    def channel(self, key: str = CONTENT_A) -> Channel:
        """The running channel of ``key``."""
        channel = self.registry.get(key)
        if channel is None:
            raise AssertionError(f"no channel {key} is running")
        return channel

    def session_id(self, key: str = CONTENT_A) -> str:
        """The engine session the channel of ``key`` plays from."""
        session = self.channel(key).session
        if session is None:
            raise AssertionError(f"channel {key} has no engine session")
        return session.playback_session_id

    async def wait_channel(self, key: str = CONTENT_A) -> Channel:
        """The channel of ``key`` once its first segments are buffered (started if need be)."""
        channel = self.registry.get_or_start("content_id", key)
        await channel.ready.wait()
        return channel

    def ended_reasons(self) -> list[str]:
        """The ``reason`` of every ``stream_ended`` the orchestrator accepted, in order."""
        return self.orchestrator.ended_reasons()

    def channel_tasks(self) -> list[str]:
        return channel_tasks(self.registry)

    async def play(
        self,
        url: str,
        until: float = math.inf,
        period: float | None = 2.0,
        *,
        log: PlayerLog | None = None,
    ) -> list[int]:
        """A player on ``url`` (reloading every ``period`` s, fetching each new segment once)
        until ``trio.current_time()`` reaches ``until``: the status of every playlist load."""
        log = log if log is not None else PlayerLog()
        await Player(HttpxGetter(self.client), log, pace=period).play(url, until)
        return log.statuses("playlist")

    async def watch(self, key: str = CONTENT_A, until: float = math.inf) -> list[int]:
        """:meth:`play` on the channel of ``key``, from ``/ace/getstream`` on."""
        return await self.play(await self.start(key), until)


@asynccontextmanager
async def harness(
    config: Config | None = None,
    engine: SimulatedEngine | None = None,
    orchestrator: FakeOrchestrator | None = None,
    *,
    origin: App | None = None,
    mounts: dict[str, httpx.AsyncBaseTransport] | None = None,
    connect: Connect | None = None,
    leases: Leases | None = None,
    path: HttpPath | None = None,
) -> AsyncIterator[Harness]:
    """Run the proxy in memory until the block ends, then shut it down and wait for it.

    ``path`` (default :data:`DEFAULT_PATH`) says how ``h.client`` reaches it.

    ``engine`` (default: :func:`small_media`, 2 s segments, 6 s on air) runs inside a
    :class:`~trioproxy.testing.faults.FaultyEngine` at :data:`ENGINE_URL`. An ``origin`` — an
    HLS server that also answers the engine's session API — serves :data:`ENGINE_URL` and
    :data:`ORIGIN_URL` instead. ``mounts`` add hosts (``{"all://evil.test": transport}``).
    ``connect`` (:func:`engine_sockets`) turns the engine watch on; without it, none runs.
    ``leases`` makes it an instance of a cluster with that store (``testing/cluster.py``).
    """
    config = config or default_config()
    faulty = FaultyEngine(engine or SimulatedEngine(small_media(), durations=[2.0], backlog=6.0))
    orchestrator = orchestrator or FakeOrchestrator()
    async with trio.open_nursery() as streams:
        # The engine's answers stream (its MPEG-TS never ends); their tasks live here.
        engine_transport = RefusingTransport(
            StreamingASGITransport(origin or faulty, streams, is_stream_path)
        )
        async with _proxy(
            config,
            faulty,
            engine_transport,
            orchestrator,
            origin,
            mounts,
            connect,
            leases,
            path or DEFAULT_PATH,
        ) as h:
            yield h
        streams.cancel_scope.cancel()


@asynccontextmanager
async def _proxy(
    config: Config,
    faulty: FaultyEngine,
    engine_transport: RefusingTransport,
    orchestrator: FakeOrchestrator,
    origin: App | None,
    mounts: dict[str, httpx.AsyncBaseTransport] | None,
    connect: Connect | None,
    leases: Leases | None,
    path: HttpPath,
) -> AsyncIterator[Harness]:
    orchestrator_transport = RefusingTransport(asgi_transport(orchestrator))
    nowhere = RefusingTransport(httpx.MockTransport(lambda request: httpx.Response(599)))
    nowhere.refusing = True
    routes: dict[str, httpx.AsyncBaseTransport] = {
        ENGINE_URL: engine_transport,
        ORCHESTRATOR_URL: orchestrator_transport,
        "all://": nowhere,
    }
    if origin is not None:
        routes[ORIGIN_URL] = engine_transport
    routes.update(mounts or {})
    async with (
        httpx.AsyncClient(mounts=routes, timeout=None) as http,
        service.proxy(config, http, connect=connect, leases=leases) as proxy,
        _client(proxy, path) as (client, wire),
    ):
        yield Harness(
            config,
            faulty,
            engine_transport,
            orchestrator,
            orchestrator_transport,
            proxy.registry,
            client,
            proxy.app,
            origin,
            wire,
        )


@asynccontextmanager
async def _client(
    proxy: service.Proxy, path: HttpPath
) -> AsyncIterator[tuple[httpx.AsyncClient, WireTransport | None]]:
    if path == "asgi":
        async with httpx.AsyncClient(
            transport=asgi_transport(proxy.app), base_url=PROXY_URL
        ) as client:
            yield client, None
        return
    hconfig = service.hypercorn_config("127.0.0.1:0")
    asgi = wrap_app(proxy.app, hconfig.wsgi_max_body_size, None)
    handler, _ = connection_handler(asgi, hconfig, WorkerContext(None), {}, proxy.lean)
    async with trio.open_nursery() as connections:
        transport = WireTransport(handler, connections)
        async with httpx.AsyncClient(transport=transport, base_url=PROXY_URL) as client:
            yield client, transport
        connections.cancel_scope.cancel()
