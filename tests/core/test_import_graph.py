"""No import circles among the modules of ``core/`` (the package ``stepstream``: the engine,
runs, storage, server, CLI), ``agents/`` and ``plugins/``: every ``import`` counts, one inside
a function (a deferred import hides a circle, it does not remove it) and one under ``if
TYPE_CHECKING:`` too (a type-only import still ties the two modules together: neither can be
read, checked or changed without the other). A lower module that needs something of an upper
one declares a small Protocol for it (see the layers in ``docs/concepts/layers.md``)."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"core": "stepstream", "agents": "stepstream.agents", "plugins": "stepstream.plugins"}


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> dict[str, list[int]]:
    """The modules among ``known`` that module ``name`` imports, each with the lines that do."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: dict[str, list[int]] = {}
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names if a.name in known]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                full = f"{target}.{alias.name}"
                if full in known:
                    targets.append(full)
                elif target in known:
                    targets.append(target)
        for target in dict.fromkeys(targets):  # one line per import statement
            if target != name:
                found.setdefault(target, []).append(node.lineno)
    return found


def _graph(modules: dict[str, Path]) -> dict[str, dict[str, list[int]]]:
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def _circles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return circles


def _describe(graph: dict[str, dict[str, list[int]]], circles: list[list[str]]) -> str:
    """Each circle with the imports that close it (``a -> b (lines)``), for a failure."""
    parts = []
    for circle in circles:
        members = set(circle)
        edges = [
            f"  {a} -> {b} (line {', '.join(map(str, graph[a][b]))})"
            for a in circle
            for b in sorted(graph[a])
            if b in members
        ]
        parts.append(f"circle of {len(circle)}: {', '.join(circle)}\n" + "\n".join(edges))
    return "\n".join(parts)


def test_the_finder_sees_a_circle() -> None:
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _circles({"a": {"b"}, "b": set()}) == []


def test_type_only_deferred_and_relative_imports_all_count(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("from .a import A\n")
    (tmp_path / "pkg" / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import B\nclass A: ...\n"
    )
    (tmp_path / "pkg" / "b.py").write_text("def make():\n    from pkg.a import A\n    return A\n")
    modules = {
        "pkg": tmp_path / "pkg" / "__init__.py",
        "pkg.a": tmp_path / "pkg" / "a.py",
        "pkg.b": tmp_path / "pkg" / "b.py",
    }
    graph = _graph(modules)
    assert graph == {"pkg": {"pkg.a": [1]}, "pkg.a": {"pkg.b": [3]}, "pkg.b": {"pkg.a": [2]}}
    circles = _circles(graph)
    assert circles == [["pkg.a", "pkg.b"]]
    assert _describe(graph, circles) == (
        "circle of 2: pkg.a, pkg.b\n  pkg.a -> pkg.b (line 3)\n  pkg.b -> pkg.a (line 2)"
    )


def test_the_import_graph_covers_the_three_packages() -> None:
    graph = _graph(_modules())
    assert "stepstream._execution.decision" in graph["stepstream._execution.execution"]
    assert "stepstream.run" in graph["stepstream.workflow"]  # imported inside a function
    assert "stepstream.step_like" in graph["stepstream.context"]  # only for type checking
    assert "stepstream.steps" in graph["stepstream.agents.step"]  # absolute, across packages
    assert "stepstream.plugins.ray_executor" in graph


def test_no_module_imports_itself_through_others() -> None:
    graph = _graph(_modules())
    circles = _circles(graph)
    assert circles == [], _describe(graph, circles)
