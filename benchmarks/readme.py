"""Put the latest results into ``benchmarks/README.md`` (between its results markers).

``python -m benchmarks.readme`` after a run; ``python -m benchmarks`` does it after a full run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .report import RESULTS, fmt, markdown_table

README = Path(__file__).resolve().parent / "README.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"
ORDER = (
    "control_plane",
    "fanout",
    "ts_fanout",
    "data_plane",
    "channels",
    "startup",
    "failover",
    "ts_upstream",
    "cluster",
)


def render(results: Path = RESULTS) -> str:
    rows = []
    sections = []
    for name in ORDER:
        json_path, md_path = results / f"{name}.json", results / f"{name}.md"
        if not json_path.exists() or not md_path.exists():
            continue
        payload = json.loads(json_path.read_text())
        for target in payload["targets"]:
            value = target["value"]
            rows.append(
                (
                    name,
                    target["name"],
                    f"{fmt(value if value is not None else float('nan'))} {target['unit']}".strip(),
                    f"{target['op']} {fmt(target['limit'])} {target['unit']}".strip(),
                    target["met"],
                )
            )
        body = md_path.read_text().replace(f"## {name}", f"### {name}", 1).strip()
        plot = results / f"{name}.png"
        sections.append(f"{body}\n\n![{name}](results/{name}.png)" if plot.exists() else body)
    summary = markdown_table(["benchmark", "figure", "value", "target", "met"], rows)
    return "\n\n".join([f"**Every target**\n\n{summary}", *sections])


def update(readme: Path = README, results: Path = RESULTS) -> bool:
    text = readme.read_text()
    if START not in text or END not in text:
        return False
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n\n{render(results)}\n\n{END}{tail}")
    return True


def main() -> int:
    if not update():
        print(f"{README} has no {START} … {END} markers", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
