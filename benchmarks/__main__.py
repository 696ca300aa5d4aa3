"""Run every benchmark, one after the other: ``python -m benchmarks [--quick] [--only a,b]``."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from . import (
    channels,
    cluster,
    control_plane,
    data_plane,
    failover,
    fanout,
    readme,
    startup,
    ts_fanout,
    ts_upstream,
)
from .report import RESULTS

BENCHMARKS: dict[str, Callable[[Sequence[str] | None], int]] = {
    "control_plane": control_plane.main,
    "fanout": fanout.main,
    "ts_fanout": ts_fanout.main,
    "data_plane": data_plane.main,
    "channels": channels.main,
    "startup": startup.main,
    "failover": failover.main,
    "ts_upstream": ts_upstream.main,
    "cluster": cluster.main,
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="short runs (each well under a minute)"
    )
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated subset of: {', '.join(BENCHMARKS)}",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the results")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    args.names = names
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.monotonic()
    failed = []
    for name in args.names:
        print(f"== {name}", file=sys.stderr, flush=True)
        forwarded = ["--out", str(args.out)] + (["--quick"] if args.quick else [])
        try:
            code = BENCHMARKS[name](forwarded)
        except Exception as exc:  # one broken benchmark must not hide the others' results
            print(f"{name} failed: {exc!r}", file=sys.stderr)
            code = 1
        if code:
            failed.append(name)
    if not args.quick and args.out == RESULTS and set(args.names) == set(BENCHMARKS):
        readme.update()  # a full run with the default results folder: refresh the README
    print(
        f"== done in {time.monotonic() - began:.0f} s; results in {args.out}"
        + (f"; failed: {', '.join(failed)}" if failed else ""),
        file=sys.stderr,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
