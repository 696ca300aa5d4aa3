"""Real HAProxy and nginx in front of proxies, for tests and benchmarks.

:func:`running_haproxy` runs ``haproxy`` with a checked-in config (``deploy/haproxy.cfg``), its
addresses given through the environment variables the config expands; :func:`running_nginx`
runs ``nginx`` with a template (``deploy/nginx/trioproxy.conf.template``) rendered the way the
official image renders ``/etc/nginx/templates``, inside a main config of its own in a temporary
prefix. Both listen on a free port of 127.0.0.1, yield once they accept connections, and stop
their process on the way out, whatever happened in the block.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import trio

__all__ = [
    "DEPLOY",
    "HAProxy",
    "ToolMissing",
    "free_port",
    "render_template",
    "running_haproxy",
    "running_nginx",
]

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
"""The load balancer recipe of a source checkout (not part of an installed package)."""

_STARTUP = 10.0
_STOP = 5.0
_PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


class ToolMissing(RuntimeError):
    """A program the balancers need is not installed."""


def _binary(name: str, package: str) -> str:
    found = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/local/sbin/{name}") if os.access(p, os.X_OK)),
        None,
    )
    if found is None:
        raise ToolMissing(f"{name} is not installed (apt-get install {package})")
    return found


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def render_template(text: str, values: Mapping[str, str]) -> str:
    """``text`` with each ``${NAME}`` replaced by ``values[NAME]``, as envsubst does; nginx's own
    ``$variables`` have no braces and stay. A placeholder without a value is an error."""
    missing = sorted({m for m in _PLACEHOLDER.findall(text) if m not in values})
    if missing:
        raise ValueError(f"no value for {', '.join(missing)}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


@dataclass(frozen=True, slots=True)
class HAProxy:
    """A running HAProxy: where players connect, and its statistics page."""

    url: str
    stats_url: str

    async def server_states(self, client: httpx.AsyncClient) -> dict[str, str]:
        """Each server's state as its health checks see it (``UP``, ``DOWN``, ...)."""
        response = await client.get(f"{self.stats_url};csv")
        response.raise_for_status()
        rows = csv.DictReader(io.StringIO(response.text.removeprefix("# ")))
        return {
            row["svname"]: row["status"]
            for row in rows
            if row["svname"] not in ("FRONTEND", "BACKEND")
        }

    async def wait_until(self, client: httpx.AsyncClient, server: str, status: str) -> None:
        """Return once the health checks have made ``server``'s state ``status`` (callers set
        the deadline). A server starts ``UP 1/2`` (not yet checked): wait for ``UP``."""
        while True:
            if (await self.server_states(client))[server] == status:
                return
            await trio.sleep(0.05)


@asynccontextmanager
async def running_haproxy(
    servers: Sequence[str],
    *,
    config: Path = DEPLOY / "haproxy.cfg",
    check_interval: float = 0.3,
) -> AsyncIterator[HAProxy]:
    """``haproxy`` with ``config`` in front of ``servers`` (``host:port``, the config's
    ``TRIOPROXY_SERVER_1`` …), health checks every ``check_interval`` seconds."""
    binary = _binary("haproxy", "haproxy")
    port, stats_port = free_port(), free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "HAPROXY_BIND": f"127.0.0.1:{port}",
        "HAPROXY_STATS_BIND": f"127.0.0.1:{stats_port}",
        "HAPROXY_CHECK_INTER": f"{round(check_interval * 1000)}ms",
    }
    env.update({f"TRIOPROXY_SERVER_{i}": server for i, server in enumerate(servers, 1)})
    with tempfile.TemporaryDirectory(prefix="trioproxy-haproxy-") as folder:
        log = Path(folder) / "haproxy.log"
        async with _process([binary, "-db", "-f", str(config)], log, port, env=env):
            yield HAProxy(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{stats_port}/stats")


_NGINX_MAIN = """\
{user}worker_processes 1;
daemon off;
master_process on;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    include {prefix}/conf.d/*.conf;
}}
"""


@asynccontextmanager
async def running_nginx(
    upstream: str, *, template: Path = DEPLOY / "nginx" / "trioproxy.conf.template"
) -> AsyncIterator[str]:
    """``nginx`` with ``template`` rendered, in front of ``upstream`` (``host:port``); yields
    its URL."""
    binary = _binary("nginx", "nginx-light")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="trioproxy-nginx-") as folder:
        prefix = Path(folder)
        main = _nginx_prefix(prefix, template, f"127.0.0.1:{port}", upstream)
        log = prefix / "error.log"
        command = [binary, "-p", str(prefix), "-c", str(main), "-e", str(log)]
        async with _process(command, log, port):
            yield f"http://127.0.0.1:{port}"


def _nginx_prefix(prefix: Path, template: Path, listen: str, upstream: str) -> Path:
    """Write nginx's files under ``prefix``: the rendered ``template``, included by a main
    config that keeps everything (pid, logs, temporary files, cache) there. Its path."""
    for sub in ("conf.d", "cache", "tmp"):
        (prefix / sub).mkdir()
    values = {
        "NGINX_LISTEN": listen,
        "NGINX_UPSTREAM": upstream,
        "NGINX_CACHE_DIR": str(prefix / "cache"),
    }
    site = render_template(template.read_text(), values)
    (prefix / "conf.d" / template.name.removesuffix(".template")).write_text(site)
    user = "user root;\n" if hasattr(os, "geteuid") and os.geteuid() == 0 else ""
    main = prefix / "nginx.conf"
    main.write_text(_NGINX_MAIN.format(user=user, prefix=prefix))
    return main


@asynccontextmanager
async def _process(
    command: list[str], log: Path, port: int, *, env: Mapping[str, str] | None = None
) -> AsyncIterator[None]:
    """``command`` running until the block ends; ready once ``port`` accepts connections."""
    with log.open("ab") as output:
        process = await trio.lowlevel.open_process(
            command, stdin=subprocess.DEVNULL, stdout=output, stderr=output, env=env
        )
    try:
        await _wait_listening(process, port, log, command[0])
        yield
    finally:
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                with trio.move_on_after(_STOP):
                    await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()


async def _wait_listening(process: trio.Process, port: int, log: Path, name: str) -> None:
    with trio.move_on_after(_STARTUP) as waited:
        while process.poll() is None:
            try:
                stream = await trio.open_tcp_stream("127.0.0.1", port)
            except OSError:
                await trio.sleep(0.05)
                continue
            await stream.aclose()
            return
    text = _tail(log)
    if waited.cancelled_caught:
        raise RuntimeError(f"{name} did not listen on port {port} within {_STARTUP:g} s:\n{text}")
    raise RuntimeError(f"{name} exited with {process.returncode}:\n{text}")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]
