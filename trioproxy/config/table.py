"""The README's configuration table, rendered from the declared settings.

``python -m trioproxy.config`` prints it; ``tests/test_config.py`` checks that README.md has it.
"""

from __future__ import annotations

from .settings import SETTINGS

__all__ = ["readme_table"]

_HEADER = ("| Variable | Flag | Default | Meaning |", "| --- | --- | --- | --- |")


def readme_table() -> str:
    """The Markdown table of every setting: variable, flag, default and meaning."""
    rows = [f"| `{s.env}` | `{s.flag}` | {s.default_text} | {s.help} |" for s in SETTINGS]
    return "\n".join((*_HEADER, *rows)) + "\n"
