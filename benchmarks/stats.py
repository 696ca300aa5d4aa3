"""Spread of a sample and the machine it was measured on: plain functions, no I/O but /proc."""

from __future__ import annotations

import math
import os
import platform
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

__all__ = ["load_average", "machine", "percentile", "ratio", "spread", "system_cpu"]

PACKAGES = ("trioproxy", "trio", "hypercorn", "quart", "quart-trio", "httpx", "h11")


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100) by linear interpolation between closest ranks."""
    if not values:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is not within 0..100")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = math.ceil(position)
    if low == high:
        return ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def spread(values: Sequence[float], scale: float = 1.0) -> dict[str, float | int]:
    """Median, p99, max, min and count of ``values``, each multiplied by ``scale``."""
    if not values:
        return {"n": 0, "median": math.nan, "p99": math.nan, "max": math.nan, "min": math.nan}
    return {
        "n": len(values),
        "median": percentile(values, 50) * scale,
        "p99": percentile(values, 99) * scale,
        "max": max(values) * scale,
        "min": min(values) * scale,
    }


def ratio(numerator: float, denominator: float) -> float:
    if denominator == 0 or math.isnan(denominator) or math.isnan(numerator):
        return math.nan
    return numerator / denominator


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_total() -> int | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    return {
        "cores": len(affinity) if affinity is not None else os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_bytes": _memory_total(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "packages": versions,
    }


def system_cpu() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine so far, from /proc/stat (0, 0 elsewhere)."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(x) for x in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields[:8]) - idle, sum(fields[:8])


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None
