"""The package's shape: no import cycle between any two of its modules.

The layers themselves are import-linter contracts in ``pyproject.toml`` (``nox -s lint``); this
test covers what layers cannot: cycles inside one layer. Imports under ``TYPE_CHECKING`` count,
because a cycle there is still two modules that cannot be understood one without the other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import trioproxy

PACKAGE = Path(trioproxy.__file__).parent


def _module_name(path: Path) -> str:
    parts = ["trioproxy", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module → the package's modules it imports (``from . import x`` names module x)."""
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    source = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    source = node.module or ""
                # ``from pkg import name``: the submodule pkg.name where there is one, else pkg.
                targets = [
                    f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source
                    for alias in node.names
                ]
            for target in targets:
                if target in modules and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph[node]:
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_import_graph_names_modules_not_packages() -> None:
    graph = import_graph()
    # settings.py does ``from . import parsers``: that is the submodule, not the package.
    assert "trioproxy.config.parsers" in graph["trioproxy.config.settings"]
    assert "trioproxy.config" not in graph["trioproxy.config.settings"]
    assert "trioproxy.channels.session" in graph["trioproxy.channels.channel"]


def test_no_import_cycle_in_the_package() -> None:
    graph = import_graph()
    assert "trioproxy.channels.registry" in graph  # the walk saw the subpackages
    assert cycles(graph) == []


def _tree(text: str) -> list[str]:
    """The task tree: the block of lines from ``serve`` to the last line drawn with ├└│."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("serve "))
    tree: list[str] = []
    for line in lines[start:]:
        if tree and not line.strip().startswith(("└", "├", "│")) and not line.startswith("   "):
            break
        if not line.strip() or line.strip().startswith("```"):
            break
        tree.append(line.strip())
    return tree


def test_the_readme_draws_the_task_tree_of_the_service_docstring() -> None:
    import trioproxy.service

    docstring = trioproxy.service.__doc__ or ""
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    tree = _tree(docstring)
    assert len(tree) > 10
    assert any("upstream session" in line for line in tree)
    assert _tree(readme) == tree


MAX_MODULE_LINES = 400


def test_no_module_is_over_the_size_a_reader_takes_in() -> None:
    sizes = {
        str(path.relative_to(PACKAGE)): len(path.read_text(encoding="utf-8").splitlines())
        for path in PACKAGE.rglob("*.py")
    }
    assert len(sizes) > 50  # the walk found the package
    assert {name: lines for name, lines in sizes.items() if lines > MAX_MODULE_LINES} == {}
