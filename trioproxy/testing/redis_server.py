"""A real ``redis-server`` for tests and benchmarks: started on a free port of 127.0.0.1 (and a
unix socket), in a temporary directory, without persistence, and stopped on the way out, even
when the test fails.

::

    async with redis_server() as redis:
        async with connect(redis.url) as leases:
            ...
            await redis.restart()  # same port, every key lost
            await redis.stop()  # unreachable until the next restart()
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

__all__ = ["RedisSentinel", "RedisServer", "redis_sentinel", "redis_server"]

_READY_TIMEOUT = 10.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server`` process at a time, always on the same port."""

    def __init__(
        self, directory: Path, *, executable: str = "redis-server", args: tuple[str, ...] = ()
    ) -> None:
        self.port = _free_port()
        self.directory = directory
        self.executable = executable
        self.args = args
        """More ``redis-server`` arguments, e.g. ``("--cluster-enabled", "yes")``."""
        self._process: trio.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def unix_url(self) -> str:
        """The same server through its unix socket."""
        return f"unix://{self.directory / 'redis.sock'}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    def _command(self) -> list[str]:
        return [
            self.executable,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            "--unixsocket", str(self.directory / "redis.sock"),
            "--logfile", str(self.directory / "redis.log"),
            *self.args,
        ]  # fmt: skip

    async def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        if self.running:
            return
        command = self._command()
        self._process = await trio.lowlevel.open_process(command, stdin=subprocess.DEVNULL)
        with trio.fail_after(_READY_TIMEOUT):
            while not await self._answers():
                if self._process.returncode is not None:
                    log = (self.directory / "redis.log").read_text(errors="replace")
                    raise RuntimeError(f"redis-server exited at start:\n{log[-2000:]}")
                await trio.sleep(0.02)

    async def _answers(self) -> bool:
        try:
            stream = await trio.open_tcp_stream("127.0.0.1", self.port)
        except OSError:
            return False
        async with stream:
            await stream.send_all(b"PING\r\n")
            return (await stream.receive_some(64)).startswith(b"+PONG")

    async def stop(self) -> None:
        """Stop the server (its data is lost); its port stays reserved for :meth:`restart`."""
        process, self._process = self._process, None
        if process is None:
            return
        with trio.CancelScope(shield=True):
            process.terminate()
            with trio.move_on_after(5):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()

    async def restart(self) -> None:
        """Stop and start again on the same port, empty, as a Redis without persistence does."""
        await self.stop()
        await self.start()


@asynccontextmanager
async def redis_server(
    executable: str = "redis-server", *, args: tuple[str, ...] = ()
) -> AsyncIterator[RedisServer]:
    """A started :class:`RedisServer`, stopped and its directory removed on the way out."""
    if shutil.which(executable) is None:
        raise FileNotFoundError(f"{executable} is not on PATH")
    with tempfile.TemporaryDirectory(prefix="trioproxy-redis-") as directory:
        server = RedisServer(Path(directory), executable=executable, args=args)
        try:
            await server.start()
            yield server
        finally:
            await server.stop()


class RedisSentinel(RedisServer):
    """A Sentinel (``redis-server --sentinel``) watching ``primary`` as ``service``."""

    def __init__(self, primary: RedisServer, service: str = "trioproxy") -> None:
        super().__init__(primary.directory, executable=primary.executable)
        self.primary = primary
        self.service = service

    @property
    def url(self) -> str:
        """The ``redis+sentinel://`` URL of the primary through this Sentinel."""
        return f"redis+sentinel://127.0.0.1:{self.port}/{self.service}"

    def _command(self) -> list[str]:
        config = self.directory / f"sentinel-{self.port}.conf"
        config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.directory}\n"
            f"logfile {self.directory / 'redis.log'}\n"
            f"sentinel monitor {self.service} 127.0.0.1 {self.primary.port} 1\n"
        )
        return [self.executable, str(config), "--sentinel"]


@asynccontextmanager
async def redis_sentinel(
    primary: RedisServer, service: str = "trioproxy"
) -> AsyncIterator[RedisSentinel]:
    """A started :class:`RedisSentinel` for ``primary`` (in its directory), stopped on the way
    out; its :attr:`~RedisSentinel.url` reaches the primary."""
    sentinel = RedisSentinel(primary, service)
    try:
        await sentinel.start()
        yield sentinel
    finally:
        await sentinel.stop()
