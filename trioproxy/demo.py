"""``trioproxy demo``: the proxy in front of a simulated engine, on this machine only."""

from __future__ import annotations

import sys
from urllib.parse import quote

import trio
from hypercorn.trio import serve as hypercorn_serve

from .config import Config
from .service import Running, hypercorn_config, serve, signal_trigger
from .testing.engine import DEMO_CONTENT_ID, SimulatedEngine, demo_media

__all__ = ["play_url", "run_demo"]


async def run_demo(config: Config, engine_port: int = 0) -> None:
    engine = SimulatedEngine(
        demo_media(), durations=[2.0], list_size=6, backlog=12.0, seamless=True, formats="both"
    )
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            hypercorn_serve, engine, hypercorn_config(f"127.0.0.1:{engine_port}")
        )
        engine_url = binds[0]
        proxy_config = config.replace(engines=(engine_url,), orchestrator_url=None)
        running = await nursery.start(_serve_proxy, proxy_config)
        base = running.url
        url = play_url(base, proxy_config)
        print(
            f"\ntrioproxy demo: simulated engine at {engine_url}, proxy at {base}\n\n"
            f"  play it:   ffplay '{url}'\n"
            f"         or  vlc '{url}'\n"
            f"  status:    curl {base}/proxy/status\n\n"
            "Ctrl-C stops.\n",
            file=sys.stderr,
            flush=True,
        )


def play_url(base: str, config: Config) -> str:
    """The demo channel's stream URL, with the first player key when keys are set (without
    it, a keyed proxy answers the URL it printed with ``401``)."""
    url = f"{base}/ace/getstream?id={DEMO_CONTENT_ID}"
    keys = (*config.player_keys, *config.player_keys_file)
    return f"{url}&key={quote(keys[0], safe='')}" if keys else url


async def _serve_proxy(config: Config, *, task_status: trio.TaskStatus[Running]) -> None:
    """Serve until SIGINT/SIGTERM, stop the channels, then end the demo (and its engine)."""
    try:
        await serve(config, shutdown_trigger=signal_trigger, task_status=task_status)
    finally:
        trio.lowlevel.current_task().parent_nursery.cancel_scope.cancel()  # type: ignore[union-attr]
