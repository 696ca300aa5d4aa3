"""Test conventions.

- Every async test runs under pytest-trio (``trio_mode = true``). Anything about time takes the
  ``autojump_clock`` fixture and asserts exact virtual times: no real sleeps in unit tests.
- Upstreams are in-process fakes (``tests/fakes.py``): the simulated engine and a fake orchestrator
  reached through ``httpx.ASGITransport``, so an engine that "takes 3 s" costs no real time.
- End-to-end tests (``test_e2e_*.py``) use real sockets on 127.0.0.1 port 0, real Hypercorn, and
  real media tools (ffmpeg/ffprobe) where they read what we serve. They use the real clock.
- A test asserts what a user would notice: what a player receives, what the engine and the
  orchestrator were told, and that nothing of a channel is left running afterwards.
"""
