"""Loading and normalising the Mastra traces in ``tests/conformance/traces`` (see its README).

What is normalised, and nothing else:
- ``runId`` values become ``"<run-id>"``;
- ``startedAt``/``endedAt``/``suspendedAt``/``resumedAt`` values become ``"<time>"``;
- ``mapping_<uuid>`` step ids become ``mapping_<n>`` (n = order of first appearance);
- ``error`` strings (Mastra: ``"Error: msg\\n    at <JS stack>"``; stepstream, by
  docs/mastra-compatibility.md: ``"<ExceptionType>: msg"``) become ``"<error: msg>"``, so the
  message is still compared.
Values are compared after normalisation, and so is the key order of every object.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

TRACES = Path(__file__).resolve().parent / "traces"

_TIME_KEYS = {"startedAt", "endedAt", "suspendedAt", "resumedAt"}
_MAPPING = re.compile(r"mapping_[0-9a-f-]{36}")
_ERROR = re.compile(r"^(?:[A-Za-z_][\w.]*: )?(?P<msg>.*?)(?:\n\s+at .*)?$", re.S)


def load_events(name: str) -> list[dict[str, Any]]:
    """Return the chunks of ``traces/<name>.jsonl``, one per line, in the order Mastra sent them."""
    lines = (TRACES / f"{name}.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def load_state(name: str) -> dict[str, Any]:
    """Return the JSON object stored in ``traces/<name>.json``."""
    data: dict[str, Any] = json.loads((TRACES / f"{name}.json").read_text())
    return data


def error_message(error: str) -> str:
    match = _ERROR.match(error)
    assert match is not None
    return match.group("msg").splitlines()[0]


class Normaliser:
    """Normalises one run's objects; mapping ids are numbered consistently across calls."""

    def __init__(self) -> None:
        self.mappings: dict[str, str] = {}

    def _map_id(self, match: re.Match[str]) -> str:
        return self.mappings.setdefault(match.group(0), f"mapping_{len(self.mappings)}")

    def __call__(self, value: Any, key: str | None = None) -> Any:
        if isinstance(value, dict):
            return {self._key(k): self(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [self(v) for v in value]
        if key == "runId":
            return "<run-id>"
        if key in _TIME_KEYS and isinstance(value, int):
            return "<time>"
        if key == "error" and isinstance(value, str):
            return f"<error: {error_message(value)}>"
        if isinstance(value, str):
            return _MAPPING.sub(self._map_id, value)
        return value

    def _key(self, key: str) -> str:
        return _MAPPING.sub(self._map_id, key)


def key_orders(value: Any, path: str = "$") -> list[tuple[str, list[str]]]:
    """Every object's path with its keys in order, to compare key order as well as values."""
    out: list[tuple[str, list[str]]] = []
    if isinstance(value, dict):
        out.append((path, list(value)))
        for k, v in value.items():
            out.extend(key_orders(v, f"{path}.{k}"))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(key_orders(v, f"{path}[{i}]"))
    return out


def assert_same(ours: Any, mastra: Any, what: str) -> None:
    """Equal after normalisation, with the same key order everywhere."""
    assert ours == mastra, f"{what}: values differ"
    assert key_orders(ours) == key_orders(mastra), f"{what}: key order differs"
