"""The real command: SIGTERM stops every channel (engine told to stop) before the process exits."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import httpx
import pytest
import trio
from hypercorn.trio import serve as hypercorn_serve

from trioproxy.service import hypercorn_config
from trioproxy.testing.engine import SimulatedEngine
from trioproxy.testing.harness import CONTENT_A, CONTENT_B, small_media


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_signal_stops_every_channel_then_exits(signum: signal.Signals) -> None:
    engine = SimulatedEngine(small_media(), durations=[1.0], backlog=3.0)
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(hypercorn_serve, engine, hypercorn_config("127.0.0.1:0"))
        env = {
            **os.environ,
            "TRIOPROXY_ENGINES": binds[0],
            "TRIOPROXY_BIND": "127.0.0.1:0",
            "TRIOPROXY_SHUTDOWN_TIMEOUT": "5",
        }
        env.pop("ORCHESTRATOR_URL", None)
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "trioproxy", "serve"],
            env=env,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        assert process.stderr is not None
        log = b""
        with trio.fail_after(20):
            while (match := re.search(rb"Running on (http://127\.0\.0\.1:\d+)", log)) is None:
                chunk = await process.stderr.receive_some()
                assert chunk, log.decode()
                log += chunk
        base = match.group(1).decode()
        async with httpx.AsyncClient(base_url=base) as client:
            for key in (CONTENT_A, CONTENT_B):
                response = await client.get(
                    "/ace/getstream", params={"id": key}, follow_redirects=True
                )
                assert response.status_code == 200
        assert len(engine.open_sessions) == 2

        process.send_signal(signum)
        with trio.fail_after(10):
            while chunk := await process.stderr.receive_some():
                log += chunk
            code = await process.wait()
        assert code == 0, log.decode()
        assert engine.open_sessions == []
        assert len(engine.stops) == 2
        assert b"Traceback" not in log
        nursery.cancel_scope.cancel()
