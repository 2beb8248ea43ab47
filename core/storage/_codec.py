"""Strict JSON for storage, and the state rebuilt from its stored records.

Values are encoded once, by the run, before they reach a backend: strict JSON (no ``NaN`` or
``Infinity``, no lone surrogates), the same on every backend, so a value one backend would take
and another refuse fails the same way everywhere, with the path of the culprit.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import StorageError

__all__ = [
    "decode",
    "encode",
    "from_v1",
    "path_key",
    "path_of",
    "prefix_bounds",
    "rebuild_state",
    "records_of_state",
]

_ENCODER = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), check_circular=False
)


def _c_encoder() -> Callable[[Any], str]:
    """``_ENCODER.encode``, built once: ``JSONEncoder.encode`` builds CPython's C encoder
    anew at every call, which is half of what a small event costs to encode (2.5 of 5 us);
    the same C encoder, built once, gives the same text. A cycle, with no circular check,
    ends in a ``RecursionError`` that :func:`encode` reports like any unencodable value."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # not CPython's _json: the pure-Python encoder
        return _ENCODER.encode
    chunks = make(
        None, _ENCODER.default, json.encoder.encode_basestring, None, ":", ",", False, False, False
    )

    def encode_once(value: Any) -> str:
        return "".join(chunks(value, 0))

    return encode_once


_encode = _c_encoder()
_SEP = "\x1f"  # joins id paths: a character no sane step id holds


def encode(value: Any, what: str, **context: Any) -> str:
    """``value`` as strict JSON text.

    :param what: How the error names the value (``"step 'fetch' output"``).
    :raises StorageError: naming ``what`` and the path of the part JSON cannot hold.
    """
    try:
        text = _encode(value)
        if not text.isascii():  # lone surrogates: no backend can store them
            text.encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError, RecursionError) as exc:
        where, problem = _culprit(value, "", set())
        where = where or "the value"
        raise StorageError(
            f"{what} cannot be stored as JSON: {where} {problem or _short(exc)}",
            path=where,
            **context,
        ) from exc
    return text


def decode(text: str | None) -> Any:
    """The value of stored JSON text (``None`` for SQL ``NULL``)."""
    return None if text is None else json.loads(text)


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _culprit(value: Any, path: str, seen: set[int]) -> tuple[str, str | None]:
    """Where in ``value`` JSON fails, and why (``("['when']", "is a date")``)."""
    if value is None or isinstance(value, bool | int):
        return path, None
    if isinstance(value, float):
        return (path, None) if math.isfinite(value) else (path, f"is {value!r} (not JSON)")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path, "holds a lone surrogate character"
        return path, None
    if isinstance(value, dict | list | tuple):
        if id(value) in seen:
            return path, "refers to itself (a cycle)"
        seen = seen | {id(value)}
        items: Iterable[tuple[Any, Any]] = (
            value.items() if isinstance(value, dict) else enumerate(value)
        )
        for key, item in items:
            if isinstance(value, dict) and not isinstance(key, str | int | float | bool):
                return path, f"has a key {key!r} that is not a string"
            found, problem = _culprit(item, f"{path}[{key!r}]", seen)
            if problem is not None:
                return found, problem
        return path, None
    return path, f"is a {type(value).__module__}.{type(value).__qualname__}"


def path_key(path: Iterable[str]) -> str:
    """An id path as one string (the stored key of a record)."""
    return _SEP.join(path)


def path_of(key: str) -> tuple[str, ...]:
    """The id path a :func:`path_key` string stands for."""
    return tuple(key.split(_SEP))


def prefix_bounds(path: Iterable[str]) -> tuple[str, str]:
    """The key range ``[low, high)`` holding every entry below ``path``."""
    key = path_key(path) + _SEP
    return key, key[:-1] + chr(ord(_SEP) + 1)


def rebuild_state(
    input_data: Any, meta: dict[str, Any], rows: Iterable[tuple[str, str, int, str]]
) -> dict[str, Any]:
    """``RunState.to_json()``'s form from stored ``(kind, key, order, data)`` rows."""
    root: dict[str, Any] = {"input": input_data, "steps": {}, "nested": {}, "meta": meta}
    for kind, key, _order, data in sorted(rows, key=lambda r: r[2]):
        *parents, name = path_of(key)
        scope = root
        for parent in parents:
            scope = scope["nested"].setdefault(parent, {"input": None, "steps": {}, "nested": {}})
        if kind == "nested":
            entry = scope["nested"].setdefault(name, {"input": None, "steps": {}, "nested": {}})
            entry["input"] = json.loads(data)
        else:
            scope["steps"][name] = json.loads(data)
    return root


def records_of_state(state: dict[str, Any]) -> list[tuple[str, str, int, str]]:
    """The stored ``(kind, key, order, data)`` rows of a ``RunState.to_json()`` state (for
    runs stored whole by schema version 1)."""
    rows: list[tuple[str, str, int, str]] = []

    def walk(scope: dict[str, Any], path: tuple[str, ...]) -> None:
        for step_id, record in scope.get("steps", {}).items():
            rows.append(("step", path_key((*path, step_id)), len(rows), json.dumps(record)))
        for wf_id, nested in scope.get("nested", {}).items():
            rows.append(
                ("nested", path_key((*path, wf_id)), len(rows), json.dumps(nested.get("input")))
            )
            walk(nested, (*path, wf_id))

    walk(state, ())
    return rows


def from_v1(s: dict[str, Any]) -> tuple[tuple[Any, ...], list[tuple[str, str, int, str]]]:
    """A schema-version-1 snapshot (the whole run in one JSON document) as a version-2 head
    row (the runs table's columns, in order) and its records."""
    state = s.get("state", {})
    updated = s.get("updated_at", 0)
    head = (
        s["run_id"], s["workflow_id"], s["status"], json.dumps(state.get("input")),
        json.dumps(s.get("runtime_context", {})), "{}", json.dumps(s.get("result")),
        s.get("error"), json.dumps(s.get("suspended", [])), s.get("last_seq", -1), None, 0,
        updated, updated,
    )  # fmt: skip
    return head, records_of_state(state)
