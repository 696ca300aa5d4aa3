"""Test conventions.

- Every async test runs under pytest-trio (``trio_mode = true``). Anything about time takes the
  ``autojump_clock`` fixture and asserts exact virtual times: no real sleeps in unit tests.
- The test doubles ship in the package, in :mod:`trioproxy.testing`: the simulated engine
  (``engine``), the fault engine (``faults``), the fake orchestrator (``orchestrator``), the
  in-memory proxy (``harness``: ``async with harness() as h``) and the HLS player simulator
  (``players``). The harness reaches them through ``httpx.ASGITransport``, so an engine that
  "takes 3 s" costs no real time. What only one suite needs stays here: the in-memory HLS
  origin (``tests/origin.py``), ffmpeg and real servers (``tests/media.py``), tool checks.
- End-to-end tests (``test_e2e_*.py``) use real sockets on 127.0.0.1 port 0, real Hypercorn, and
  real media tools (ffmpeg/ffprobe) where they read what we serve. They use the real clock.
- A test asserts what a user would notice: what a player receives, what the engine and the
  orchestrator were told, and that nothing of a channel is left running afterwards.
- Tests use public APIs only: no private attribute of the proxy's objects.
"""

from __future__ import annotations

import random

import pytest


@pytest.fixture
def no_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backoff without jitter (the longest delay), so retry times are exact."""
    monkeypatch.setattr(random, "uniform", lambda low, high: high)
