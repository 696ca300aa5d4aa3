"""Writing a benchmark's result: ``<name>.json``, ``<name>.md`` (tables) and ``<name>.png``."""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .stats import load_average, machine, system_cpu

__all__ = [
    "RESULTS",
    "Started",
    "Target",
    "base_parser",
    "begin",
    "fmt",
    "markdown_table",
    "write_result",
]

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Target:
    """A figure and the target it is reported against (never asserted)."""

    name: str
    value: float
    op: str  # "<=", ">=" or "=="
    limit: float
    unit: str = ""

    @property
    def met(self) -> bool | None:
        if math.isnan(self.value):
            return None
        if self.op == "<=":
            return self.value <= self.limit
        if self.op == ">=":
            return self.value >= self.limit
        return math.isclose(self.value, self.limit, rel_tol=1e-9)


@dataclass(frozen=True)
class Started:
    """When a benchmark began, and the machine's CPU counters then."""

    time: float
    cpu: tuple[int, int]


def begin() -> Started:
    return Started(time.time(), system_cpu())


def base_parser(name: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.{name}", description=description)
    parser.add_argument("--quick", action="store_true", help="a short run (well under a minute)")
    parser.add_argument("--runs", type=int, default=None, help="repetitions (default by mode)")
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help="folder for the results (default: %(default)s)"
    )
    return parser


def fmt(value: Any, digits: int = 3) -> str:
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "**no**", None: "–"}[value]
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if value == 0:
            return "0"
        magnitude = math.floor(math.log10(abs(value)))
        decimals = max(0, digits - 1 - magnitude)
        return f"{value:,.{decimals}f}"
    return str(value)


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _targets_table(targets: Sequence[Target]) -> str:
    rows = [
        (
            t.name,
            f"{fmt(t.value)} {t.unit}".strip(),
            f"{t.op} {fmt(t.limit)} {t.unit}".strip(),
            t.met,
        )
        for t in targets
    ]
    return markdown_table(["figure", "value", "target", "met"], rows)


def _machine_line(info: dict[str, Any]) -> str:
    packages = ", ".join(f"{k} {v}" for k, v in info["packages"].items() if v)
    memory = info.get("memory_bytes")
    gib = f", {memory / 2**30:.0f} GiB" if memory else ""
    return (
        f"{info['cores']} cores ({info['cpu']}){gib}, {info['platform']}, "
        f"{info['implementation']} {info['python']}; {packages}"
    )


def write_result(
    name: str,
    *,
    out: Path,
    quick: bool,
    started: Started,
    setup: dict[str, Any],
    tables: Sequence[tuple[str, Sequence[str], Sequence[Sequence[Any]]]],
    targets: Sequence[Target],
    data: dict[str, Any],
    plot: Callable[[Path], None] | None,
    notes: Sequence[str] = (),
) -> Path:
    """Write the three files of one benchmark's result; return the Markdown's path."""
    out.mkdir(parents=True, exist_ok=True)
    finished = time.time()
    busy, total = system_cpu()
    info = machine()
    busy_ticks, total_ticks = busy - started.cpu[0], total - started.cpu[1]
    info["machine_busy_percent"] = round(100 * busy_ticks / total_ticks, 1) if total_ticks else None
    info["load_average_1min"] = load_average()
    when = datetime.datetime.fromtimestamp(started.time, datetime.UTC).strftime(
        "%Y-%m-%d %H:%M UTC"
    )
    payload = {
        "benchmark": name,
        "quick": quick,
        "started_at": when,
        "wall_seconds": round(finished - started.time, 1),
        "machine": info,
        "setup": setup,
        "targets": [{**asdict(t), "met": t.met} for t in targets],
        "data": data,
        "notes": list(notes),
    }
    json_path = out / f"{name}.json"
    json_path.write_text(json.dumps(_clean(payload), indent=1, default=_jsonable) + "\n")
    parts = [f"## {name}{' (quick run)' if quick else ''}", ""]
    parts.append(f"Measured {when} in {payload['wall_seconds']} s on {_machine_line(info)}.")
    parts.append("")
    parts.append(
        f"Machine busy during the run (all processes, this benchmark's included): "
        f"{fmt(info['machine_busy_percent'])} % of all cores; 1-min load average at the end "
        f"{fmt(info['load_average_1min'])}."
    )
    parts.append("")
    if targets:
        parts += ["**Targets** (reported, not asserted)", "", _targets_table(targets), ""]
    for title, columns, rows in tables:
        parts += [f"**{title}**", "", markdown_table(columns, rows), ""]
    parts += [f"- {note}" for note in notes]
    if notes:
        parts.append("")
    setup_text = ", ".join(f"{k}={v}" for k, v in setup.items())
    parts += [f"Setup: {setup_text}.", ""]
    md_path = out / f"{name}.md"
    md_path.write_text("\n".join(parts))
    if plot is not None:
        try:
            plot(out / f"{name}.png")
        except ImportError as exc:  # matplotlib is an extra (``.[bench]``): the figures stand
            (out / f"{name}.png").unlink(missing_ok=True)  # a plot of another run would not
            print(f"{name}: no plot ({exc})", file=sys.stderr)
    return md_path


def _clean(value: Any) -> Any:
    """NaN and infinities become null: the JSON stays standard."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return repr(value)


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (no display needed)."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
