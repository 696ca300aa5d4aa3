"""The benchmarks' pure functions: statistics, target checks, wrk parsing, the runner's arguments.

No benchmark runs here and nothing is timed."""

from __future__ import annotations

import math

import pytest

from benchmarks.__main__ import parse_args
from benchmarks.data_plane import parse_wrk
from benchmarks.report import Target, fmt
from benchmarks.stats import percentile, spread

WRK_OUTPUT = """\
Running 10s test @ http://127.0.0.1:8000/seg.ts
  2 threads and 50 connections
  Latency Distribution
     50%  30.40ms
     75%   40.00ms
     90%   50.00ms
     99%    1.20s
  14200 requests in 10.00s, 840.00MB read
  Non-2xx or 3xx responses: 3
Requests/sec:   1420.00
Transfer/sec:     84.00MB
"""


def test_percentiles_interpolate_between_ranks() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0], 99) == 5.0
    assert math.isnan(percentile([], 50))
    summary = spread([0.001, 0.002, 0.003], scale=1000)
    assert summary["n"] == 3
    assert summary["median"] == pytest.approx(2.0)
    assert summary["max"] == pytest.approx(3.0)


def test_targets_are_checked_not_asserted() -> None:
    assert Target("p99", 40.0, "<=", 50.0).met is True
    assert Target("ratio", 0.8, ">=", 0.85).met is False
    assert Target("fetches", 1.0, "==", 1.0).met is True
    assert Target("missing", math.nan, "<=", 1.0).met is None
    assert fmt(1234.5678) == "1,235"
    assert fmt(0.012345) == "0.0123"


def test_wrk_output_is_parsed() -> None:
    result = parse_wrk(WRK_OUTPUT)
    assert result["requests_per_second"] == 1420.0
    assert result["p50_ms"] == pytest.approx(30.4)
    assert result["p99_ms"] == pytest.approx(1200.0)
    assert result["errors"] == 3
    assert result["requests"] == 14200


def test_runner_arguments() -> None:
    args = parse_args(["--quick", "--only", "fanout,startup"])
    assert args.quick
    assert args.names == ["fanout", "startup"]
    with pytest.raises(SystemExit):
        parse_args(["--only", "nonsense"])
