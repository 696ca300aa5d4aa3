"""External tools the end-to-end tests use (ffmpeg, ffprobe, ...).

Where a tool is missing the test is skipped — unless ``TRIOPROXY_TEST_REQUIRE_TOOLS=1`` (set by
``nox -s tests`` and so by CI), where a missing tool fails the run instead of hiding tests.
"""

from __future__ import annotations

import os
import shutil

import pytest

__all__ = ["require_tools"]


def require_tools(*tools: str) -> pytest.MarkDecorator:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing and os.environ.get("TRIOPROXY_TEST_REQUIRE_TOOLS") == "1":
        raise RuntimeError(f"tests need {', '.join(missing)} on PATH (nox -s tests installs them)")
    return pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)} on PATH")
