"""Statuses are spelled once, in ``stepstream.status``; everything else names them from there."""

from __future__ import annotations

import ast
from pathlib import Path

from stepstream import status

ROOT = Path(__file__).resolve().parents[2]
NAMES = set(status.RUN_STATUSES) | {"waiting"}


def _spelled_out(tree: ast.Module) -> list[int]:
    """Lines defining a status vocabulary again: a ``Literal`` of two or more status names,
    or a module-level name bound to a tuple, list or set of them. (A test such as
    ``status in ("failed", "canceled")`` asks a question; it defines nothing.)"""
    candidates: list[ast.expr] = [
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None
    ]
    candidates += [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Subscript) and ast.unparse(node.value).endswith("Literal")
    ]
    found = []
    for node in candidates:
        items: list[ast.expr] = []
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            items = list(node.elts)
        elif isinstance(node, ast.Subscript):
            inner = node.slice
            items = list(inner.elts) if isinstance(inner, ast.Tuple) else [inner]
        values = [i.value for i in items if isinstance(i, ast.Constant)]
        if len(values) >= 2 and len(values) == len(items) and set(values) <= NAMES:
            found.append(node.lineno)
    return sorted(set(found))


def test_no_module_spells_the_statuses_out_again() -> None:
    offenders = []
    for folder in ("core", "plugins", "agents"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == ROOT / "core" / "status.py":
                continue
            for line in _spelled_out(ast.parse(path.read_text())):
                offenders.append(f"{path.relative_to(ROOT)}:{line}")
    assert offenders == []


def test_the_check_sees_a_spelled_out_vocabulary() -> None:
    tree = ast.parse('ENDED = ("success", "failed")\nS = Literal["running", "success"]\n')
    assert _spelled_out(tree) == [1, 2]


def test_final_and_claimable_are_statuses_of_runs() -> None:
    assert set(status.FINAL) | set(status.CLAIMABLE) <= set(status.RUN_STATUSES)
    assert all(status.is_final(s) for s in status.FINAL)
    assert not any(status.is_final(s) for s in status.CLAIMABLE)
