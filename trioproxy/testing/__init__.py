"""Test doubles that ship with the package, as :mod:`trio.testing` does: the simulated engine, the
fault engine, the fake orchestrator and the in-memory proxy harness.

Tests, benchmarks and the demo use them. Nothing else in the package imports this package.
"""
