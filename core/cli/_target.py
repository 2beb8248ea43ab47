"""What the command line is given: workflow targets (``MODULE:WORKFLOW``) and JSON arguments.

Everything here turns a bad argument into a :class:`UsageError` whose message is meant for
the person at the terminal; the command line prints it and exits with status 2.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from stepstream.errors import StepstreamError
from stepstream.workflow import Workflow

__all__ = [
    "UsageError",
    "load_module",
    "load_workflow",
    "module_workflows",
    "parse_json",
    "workflows_of",
]


class UsageError(StepstreamError):
    """A command-line argument is wrong: the message says which and why (exit status 2)."""


def parse_json(value: str, option: str) -> Any:
    """Parse ``value`` as JSON; ``@path`` reads the file at ``path`` (``@-``: standard input).

    :raises UsageError: if the file cannot be read or the text is not JSON.
    """
    text = value
    if value.startswith("@"):
        where = value[1:]
        try:
            text = sys.stdin.read() if where == "-" else Path(where).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"{option}: cannot read {where}: {exc.strerror or exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{option}: invalid JSON: {exc}") from exc


def load_module(spec: str) -> ModuleType:
    """Import ``spec``: a dotted module path (found from the current directory too) or the
    path of a ``.py`` file (whose directory is put on ``sys.path``, as ``python file.py`` does).

    :raises UsageError: if the module cannot be found or raises while it is imported.
    """
    if spec.endswith(".py") or os.sep in spec:
        path = Path(spec).resolve()
        if not path.is_file():
            raise UsageError(f"no such file: {spec}")
        sys.path.insert(0, str(path.parent))
        name = path.stem
        file_spec = importlib.util.spec_from_file_location(name, path)
        if file_spec is None or file_spec.loader is None:
            raise UsageError(f"cannot import {spec}: not a Python module")
        module = importlib.util.module_from_spec(file_spec)
        sys.modules[name] = module
        try:
            file_spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(name, None)
            raise UsageError(f"importing {spec} failed: {type(exc).__name__}: {exc}") from exc
        return module
    # A console script does not have the current directory on sys.path; `python -m` does.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (spec == exc.name or spec.startswith(exc.name + ".")):
            raise UsageError(f"no module named {spec!r}") from exc
        raise UsageError(f"importing {spec} failed: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:
        raise UsageError(f"importing {spec} failed: {type(exc).__name__}: {exc}") from exc


def module_workflows(module: ModuleType) -> dict[str, Workflow]:
    """The committed :class:`Workflow` attributes of ``module``, keyed by attribute name."""
    return {
        name: value
        for name, value in vars(module).items()
        if not name.startswith("_") and isinstance(value, Workflow) and value.committed
    }


def load_workflow(target: str) -> tuple[str, Workflow]:
    """Resolve ``MODULE:WORKFLOW`` (or ``MODULE`` holding exactly one committed workflow) to
    the workflow's attribute name and the workflow.

    :raises UsageError: if the module or attribute is missing, or is not a committed workflow.
    """
    spec, _, name = _split(target)
    module = load_module(spec)
    if not name:
        found = module_workflows(module)
        if len(found) != 1:
            listed = ", ".join(sorted(found)) or "none"
            raise UsageError(
                f"{spec} has {len(found)} committed workflows ({listed}); name one: {spec}:WORKFLOW"
            )
        return next(iter(found.items()))
    return name, _attribute(module, spec, name)


def workflows_of(target: str) -> dict[str, Workflow]:
    """Resolve ``MODULE`` (all its committed workflows) or ``MODULE:A,B`` (those named).

    :raises UsageError: as :func:`load_workflow`, or if ``MODULE`` holds no workflow.
    """
    spec, _, names = _split(target)
    module = load_module(spec)
    if not names:
        found = module_workflows(module)
        if not found:
            raise UsageError(f"{spec} has no committed Workflow attribute")
        return found
    return {name: _attribute(module, spec, name) for name in names.split(",") if name}


def _split(target: str) -> tuple[str, str, str]:
    # A Windows drive ("C:\\...") is not a separator; rpartition keeps "pkg.mod:wf" simple.
    spec, sep, name = target.rpartition(":")
    if not sep or os.sep in name or name.endswith(".py"):
        return target, "", ""
    if not spec:
        raise UsageError(f"{target!r}: expected MODULE:WORKFLOW")
    return spec, sep, name


def _attribute(module: ModuleType, spec: str, name: str) -> Workflow:
    value = getattr(module, name, None)
    if value is None:
        known = ", ".join(sorted(module_workflows(module))) or "none"
        raise UsageError(f"{spec} has no attribute {name!r} (committed workflows: {known})")
    if not isinstance(value, Workflow):
        raise UsageError(f"{spec}:{name} is a {type(value).__name__}, not a Workflow")
    if not value.committed:
        raise UsageError(f"{spec}:{name} is not committed (call .commit() on it)")
    return value
