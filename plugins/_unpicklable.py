"""Find what in a value does not pickle, and name it as a user would look for it.

``describe({"cfg": Config(handle=lock)})`` is ``"['cfg'].handle: a _thread.lock"``: the path
to the innermost part that does not pickle while its own parts do, through mapping keys,
sequence items, object attributes and the variables a function closes over or reads from its
module (what cloudpickle sends along with a function it pickles by value).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping
from typing import Any

from ray import cloudpickle

__all__ = ["describe", "pickles"]

_DEPTH = 12


def pickles(value: Any) -> bool:
    """Whether ``value`` pickles as Ray pickles it (cloudpickle)."""
    try:
        cloudpickle.dumps(value)  # type: ignore[no-untyped-call]
    except Exception:
        return False
    return True


def describe(value: Any) -> str:
    """``"<path>: a <type>"`` of the innermost part of ``value`` that does not pickle."""
    path, culprit = _innermost(value)
    kind = _kind(culprit)
    return f"{path.lstrip('.')}: {kind}" if path else kind


def _innermost(value: Any) -> tuple[str, Any]:
    path, seen = "", {id(value)}
    for _ in range(_DEPTH):
        for name, part in _parts(value):
            if id(part) not in seen and not pickles(part):
                seen.add(id(part))
                path, value = path + name, part
                break
        else:
            break
    return path, value


def _parts(value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield f"[{key!r}]", item
    elif isinstance(value, list | tuple | set | frozenset):
        for i, item in enumerate(value):
            yield f"[{i}]", item
    elif inspect.isfunction(value):
        try:
            found = inspect.getclosurevars(value)
        except (TypeError, ValueError):
            return
        for name, item in {**found.globals, **found.nonlocals}.items():
            if not inspect.ismodule(item):
                yield f".{name}", item
    elif hasattr(value, "__dict__") and not isinstance(value, type):
        for name, item in vars(value).items():
            yield ("" if name == "_execute" else f".{name}"), item  # a step's function


def _kind(value: Any) -> str:
    cls = type(value)
    return f"a {cls.__module__}.{cls.__qualname__}".replace("a builtins.", "a ")
