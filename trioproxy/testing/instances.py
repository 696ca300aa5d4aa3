"""Proxies as processes, for tests and benchmarks that need a real death (``kill -9``).

:func:`running_instance` starts ``python -m trioproxy serve`` (the interpreter running the
tests, so :func:`trioproxy.service.serve` as in production) with its settings as environment
variables (``TRIOPROXY_*`` and the few older names), on a free port of 127.0.0.1 with
``TRIOPROXY_INSTANCE_URL`` pointing there, and yields once ``/healthz`` answers. Whatever
happens in the block, the process is reaped on the way out (SIGTERM, then SIGKILL): nothing
is left running. Its output goes to a temporary file; when the block fails, the file's tail is
attached to the error as a note.

::

    async with running_instance({"TRIOPROXY_REDIS_URL": redis.url}) as instance:
        ...  # instance.url, instance.pid
        instance.kill()  # SIGKILL: no teardown, no stream_ended, its sockets reset
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import trio

from ..config import SETTINGS
from .balancers import free_port

__all__ = ["Instance", "cpu_seconds", "running_instance"]

READY_WITHIN = 30.0
"""Seconds an instance may take to answer ``/healthz`` (imports and start-up, a busy machine)."""
STOP_WITHIN = 15.0
"""Seconds a terminated instance may take to exit before it is killed."""
_TAIL = 6000


@dataclass
class Instance:
    """One running ``trioproxy serve`` process."""

    url: str
    """``http://127.0.0.1:<port>``, also its ``TRIOPROXY_INSTANCE_URL``."""
    process: trio.Process
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``, as a load balancer names a server."""
        return self.url.removeprefix("http://")

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: the process dies at once, nothing of it cleaned up."""
        if self.alive:
            self.process.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        """SIGTERM: the service shuts down as it does in production."""
        if self.alive:
            self.process.send_signal(signal.SIGTERM)

    async def wait(self) -> int:
        """Wait for the process to exit (callers set the deadline); its exit status."""
        return await self.process.wait()

    def cpu_seconds(self) -> float:
        """User and system CPU the process has used so far."""
        return cpu_seconds(self.pid)

    def output(self) -> str:
        """The tail of what the process wrote."""
        return self.log.read_text(errors="replace")[-_TAIL:]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid``, from ``/proc/<pid>/stat`` (Linux)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    fields = stat.rpartition(")")[2].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def _environment(settings: Mapping[str, str], port: int) -> dict[str, str]:
    # Nothing of the test run's own environment configures the instance: only ``settings``.
    declared = {s.env for s in SETTINGS}
    env = {name: value for name, value in os.environ.items() if name not in declared}
    env.update(settings)
    env["TRIOPROXY_BIND"] = f"127.0.0.1:{port}"
    env["TRIOPROXY_INSTANCE_URL"] = f"http://127.0.0.1:{port}"
    env.setdefault("TRIOPROXY_LOG_LEVEL", "INFO")
    return env


@asynccontextmanager
async def running_instance(
    settings: Mapping[str, str], *, ready_within: float = READY_WITHIN
) -> AsyncIterator[Instance]:
    """A ``trioproxy serve`` process with ``settings`` (``TRIOPROXY_*`` variables; the bind
    address and instance URL are set here), ready once ``/healthz`` answers; reaped on exit."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="trioproxy-instance-") as folder:
        log = Path(folder) / "output.log"
        with log.open("wb") as output:
            process = await trio.lowlevel.open_process(
                [sys.executable, "-m", "trioproxy", "serve"],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                env=_environment(settings, port),
            )
        instance = Instance(f"http://127.0.0.1:{port}", process, log)
        try:
            await _wait_ready(instance, ready_within)
            yield instance
        except Exception as error:
            error.add_note(f"output of the instance at {instance.url}:\n{instance.output()}")
            raise
        finally:
            with trio.CancelScope(shield=True):
                await _reap(instance)


async def _wait_ready(instance: Instance, seconds: float) -> None:
    async with httpx.AsyncClient(timeout=2.0) as client:
        with trio.move_on_after(seconds):
            while instance.alive:
                try:
                    answer = await client.get(f"{instance.url}/healthz")
                except httpx.HTTPError:
                    answer = None
                if answer is not None and answer.status_code == 200:
                    return
                await trio.sleep(0.1)
    if instance.alive:
        raise RuntimeError(f"the instance at {instance.url} did not answer within {seconds:g} s")
    raise RuntimeError(f"the instance at {instance.url} exited with {instance.process.returncode}")


async def _reap(instance: Instance) -> None:
    instance.terminate()
    with trio.move_on_after(STOP_WITHIN):
        await instance.wait()
    instance.kill()
    await instance.wait()
