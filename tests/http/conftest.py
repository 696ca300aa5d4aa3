"""Every test of this suite that runs the in-memory proxy (:func:`~trioproxy.testing.harness.
harness`) runs twice: through the app (``asgi``) and through the connection handler the accept
loop runs (``lean``: HTTP/1.1 bytes, the lean path first, Hypercorn and the app for the rest).
Both must answer alike. A module that names its own ``HTTP_PATHS`` runs on those."""

from __future__ import annotations

import pytest

from trioproxy.testing import harness

PATHS = ("asgi", "lean")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    uses_harness = any(
        value is harness.harness or value is harness for value in vars(metafunc.module).values()
    )
    if uses_harness:
        metafunc.fixturenames.append("http_path")
        metafunc.parametrize("http_path", getattr(metafunc.module, "HTTP_PATHS", PATHS))


@pytest.fixture
def http_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """How the harness reaches the proxy in this test."""
    path: str = getattr(request, "param", "asgi")
    monkeypatch.setattr(harness, "DEFAULT_PATH", path)
    return path
