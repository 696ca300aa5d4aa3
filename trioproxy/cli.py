"""The ``trioproxy`` command: ``serve`` runs the proxy, ``demo`` runs it with a simulated engine."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
from collections.abc import Sequence

import trio

from ._version import __version__
from .config import ConfigError, add_arguments, load_config
from .observability import JsonFormatter, LogContextFilter
from .service import serve

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trioproxy",
        description="A streaming proxy for AceStream engines. Every setting is also read from "
        "the environment variable shown with it.",
    )
    parser.add_argument("--version", action="version", version=f"trioproxy {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve_parser = commands.add_parser("serve", help="run the proxy")
    add_arguments(serve_parser)
    demo_parser = commands.add_parser(
        "demo", help="run the proxy with a built-in simulated engine and print a URL to play"
    )
    add_arguments(demo_parser)
    demo_parser.add_argument(
        "--engine-port",
        type=int,
        default=0,
        help="port of the simulated engine (default: any free port)",
    )
    return parser


TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(level: str, form: str = "text") -> logging.Handler:
    """Log to stderr at ``level``, as text or (``form="json"``) one JSON object per line; every
    record gets the channel and engine its task is about (see :mod:`trioproxy.observability`)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(LogContextFilter())
    handler.setFormatter(JsonFormatter() if form == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=getattr(logging, level), handlers=[handler], force=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return handler


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command or "serve"
    try:
        config = load_config(os.environ, args if args.command else None)
    except ConfigError as exc:
        print(f"trioproxy: configuration error: {exc}", file=sys.stderr)
        return 2
    setup_logging(config.log_level, config.log_format)
    # What start-up allocated (modules, the app) lives as long as the process: keep it out of the
    # collector's full passes, which would otherwise scan it every time (~16 ms each, measured).
    gc.collect()
    gc.freeze()
    try:
        if command == "demo":
            from .demo import run_demo

            trio.run(run_demo, config, args.engine_port)
        else:
            trio.run(serve, config)
    except OSError as exc:
        print(f"trioproxy: cannot serve on {config.bind}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
