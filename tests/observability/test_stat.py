"""Reading an engine's ``stat_url`` answer: what it gives, and nothing it garbles."""

from __future__ import annotations

import math

from trioproxy.upstream.stat import parse_stat


def test_a_full_answer() -> None:
    payload = {
        "response": {
            "status": "dl",
            "peers": 12,
            "speed_down": 512.5,
            "speed_up": "40",
            "downloaded": 10_000_000,
            "uploaded": 2_000,
            "livepos": {"live_first": 10, "live_last": 20, "pos": "19", "buffer_pieces": 3},
        },
        "error": None,
    }
    stat = parse_stat(payload, now=5.0)
    assert stat is not None
    assert stat.as_dict(now=6.5) == {
        "status": "dl",
        "peers": 12,
        "speed_down_kbps": 512.5,
        "speed_up_kbps": 40.0,
        "downloaded_bytes": 10_000_000,
        "uploaded_bytes": 2_000,
        "livepos": {"live_first": 10, "live_last": 20, "pos": 19},
        "age_seconds": 1.5,
    }


def test_errors_and_garbage() -> None:
    assert parse_stat(None, 0.0) is None
    assert parse_stat([], 0.0) is None
    assert parse_stat({"response": None, "error": "unknown playback session id"}, 0.0) is None
    stat = parse_stat(
        {"response": {"status": 3, "peers": True, "speed_down": math.inf, "downloaded": "x"}},
        0.0,
    )
    assert stat is not None
    assert (stat.status, stat.peers, stat.speed_down, stat.downloaded) == (None, None, None, None)
    assert stat.livepos is None
