"""``python -m trioproxy.config`` prints the README's configuration table."""

from __future__ import annotations

from .table import readme_table

print(readme_table(), end="")
