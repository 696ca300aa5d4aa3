"""The benchmarks' pure functions: statistics, target checks, wrk parsing, the runner's arguments.

No benchmark runs here and nothing is timed."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from benchmarks.__main__ import parse_args
from benchmarks.data_plane import parse_wrk
from benchmarks.hostile import (
    count_tracebacks,
    first_words,
    kept_playing,
    log_errors,
    parse_proc_status,
    select_cases,
    summarise_probe,
)
from benchmarks.readme import render
from benchmarks.report import Target, fmt
from benchmarks.stamps import PtsScanner, key_text, match, pes_starts
from benchmarks.stats import percentile, spread
from benchmarks.ts_upstream import marginals, requests_summary, without_samples

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


PROC_STATUS = """\
Name:\tpython
VmPeak:\t 2719304 kB
VmHWM:\t 1588224 kB
VmRSS:\t   58368 kB
Threads:\t1
"""

PROXY_LOG = """\
2026-12-01 23:00:07,600 INFO    trioproxy.channels.channel: channel a: stopping
2026-12-01 23:00:07,605 ERROR   trioproxy.channels.channel: channel a: internal error
  + Exception Group Traceback (most recent call last):
  |   File "channel.py", line 236, in _run
  | ExceptionGroup: Exceptions from Trio nursery (1 sub-exception)
  +-+---------------- 1 ----------------
    | Traceback (most recent call last):
    |   File "fetcher.py", line 147, in run
    | trio.BrokenResourceError
    +------------------------------------
2026-12-01 23:00:08,000 ERROR   trio.serve_listeners: accept returned EMFILE; retrying
Traceback (most recent call last):
  File "socket.py", line 294, in accept
OSError: [Errno 24] Too many open files
"""


def test_proc_status_is_read_in_bytes() -> None:
    fields = parse_proc_status(PROC_STATUS)
    assert fields["VmRSS"] == 57 * 2**20
    assert fields["VmHWM"] == 1551 * 2**20
    assert "Threads" not in fields
    assert parse_proc_status("") == {}


def test_probe_and_good_player_are_summarised() -> None:
    summary = summarise_probe([0.001, 0.002, 0.250], failures=2)
    assert summary["n"] == 3
    assert summary["max"] == pytest.approx(250.0)
    assert summary["failures"] == 2
    assert kept_playing([(True, 0.1), (True, 0.2)]) is True
    assert kept_playing([(True, 0.1), (False, 0.2)]) is False
    assert kept_playing([(True, 5.0)]) is False
    assert kept_playing([]) is None


def test_answers_and_logs_are_reduced_to_a_line() -> None:
    body = b'{"error": "upstream_failed",\n "message": "the playlist is over 8 MiB"}'
    assert first_words(body, 4) == '{"error": "upstream_failed", "message": "the'
    assert len(first_words(b"x" * 500, 1, width=20)) == 20
    assert count_tracebacks(PROXY_LOG) == 2
    errors = log_errors(PROXY_LOG)
    assert errors[0].endswith("internal error ← trio.BrokenResourceError")
    assert errors[1].endswith("retrying ← OSError: [Errno 24] Too many open files")


def test_hostile_cases_are_selected_by_name() -> None:
    assert [c.name for c in select_cases("gzip_bomb,flood", quick=True)] == ["gzip_bomb", "flood"]
    assert "vod_budget" not in [c.name for c in select_cases("", quick=True)]
    assert "vod_budget" in [c.name for c in select_cases("", quick=False)]
    with pytest.raises(ValueError, match="nonsense"):
        select_cases("nonsense", quick=False)


def test_results_without_a_plot_get_no_image_link(tmp_path: Path) -> None:
    target = {"name": "freeze", "value": 1.0, "unit": "s", "op": "<=", "limit": 1.3, "met": True}
    for name, plotted in (("failover", False), ("startup", True)):
        (tmp_path / f"{name}.json").write_text(json.dumps({"targets": [target]}))
        (tmp_path / f"{name}.md").write_text(f"## {name}\n\nfigures\n")
        if plotted:
            (tmp_path / f"{name}.png").write_bytes(b"\x89PNG")
    text = render(tmp_path)
    assert "### failover" in text
    assert "### startup" in text
    assert "![startup](results/startup.png)" in text
    assert "failover.png" not in text


def _pes_packet(pid: int, pts: int) -> bytes:
    """One packet opening a PES with a PTS."""
    stamp = bytes(
        [
            0x21 | ((pts >> 29) & 0x0E),
            (pts >> 22) & 0xFF,
            ((pts >> 14) & 0xFE) | 1,
            (pts >> 7) & 0xFF,
            ((pts << 1) & 0xFE) | 1,
        ]
    )
    head = bytes([0x47, 0x40 | pid >> 8, pid & 0xFF, 0x10])
    payload = b"\x00\x00\x01\xe0\x00\x00\x80\x80\x05" + stamp
    return (head + payload).ljust(188, b"\xff")


def _plain_packet(pid: int) -> bytes:
    return bytes([0x47, pid >> 8, pid & 0xFF, 0x10]).ljust(188, b"\xff")


def test_pes_starts_are_named_by_pid_and_pts() -> None:
    data = _pes_packet(0x100, 900_000) + _plain_packet(0x100) + _pes_packet(0x101, 1 << 32)
    assert pes_starts(data) == [(0x100, 900_000), (0x101, 1 << 32)]
    assert pes_starts(_plain_packet(0x1FFF)) == []
    assert key_text((0x100, 900_000)) == "256:900000"


def test_the_scanner_takes_any_chunking_and_skips_garbage() -> None:
    stream = _pes_packet(0x100, 1) + _plain_packet(0x100) + _pes_packet(0x100, 2)
    scanner = PtsScanner()
    found = [key for at in range(0, len(stream), 50) for key in scanner.feed(stream[at : at + 50])]
    assert found == [(0x100, 1), (0x100, 2)]
    scanner = PtsScanner()
    garbage = b"\x47junk" * 3
    assert scanner.feed(garbage + stream + _pes_packet(0x100, 3)) == [
        (0x100, 1),
        (0x100, 2),
        (0x100, 3),
    ]


def test_arrivals_are_matched_to_sends_within_the_window() -> None:
    sent = {"256:1": 10.0, "256:2": 11.0}
    arrivals = [("256:1", 10.5), ("256:2", 11.25), ("256:3", 12.0), ("256:1", 20.0)]
    assert match(arrivals, sent, 10.0, 12.0) == [0.5, 0.25]
    assert match(arrivals, sent, 11.0, 12.0) == [0.25]


def test_upstream_modes_are_summarised_per_round() -> None:
    def row(mode: str, players: int, cpu: float, requests: dict[str, float]) -> dict[str, object]:
        return {
            "mode": mode,
            "players": players,
            "seconds": 30.0,
            "cpu_seconds": cpu,
            "requests_per_channel_minute": requests,
        }

    rounds = [
        [row("ts", 10, 1.0, {"stream": 0.0}), row("ts", 1000, 2.0, {"stat": 2.0})],
        [row("ts", 10, 1.0, {"stream": 0.0}), row("ts", 1000, 3.0, {"stat": 4.0})],
    ]
    cpu = marginals(rounds, "ts")
    assert cpu == pytest.approx([1000 * 1.0 / (990 * 0.5), 1000 * 2.0 / (990 * 0.5)])
    summary = requests_summary([r for rows in rounds for r in rows])
    assert summary["stat"] == 1.0  # median of 0, 2, 0, 4
    assert summary["all"] == 1.0


def test_raw_samples_stay_out_of_the_results() -> None:
    row = {"players": 10, "latencies": [0.1], "from_published": [0.2], "latency_ms": {"n": 1}}
    assert without_samples(row) == {"players": 10, "latency_ms": {"n": 1}}
