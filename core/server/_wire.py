"""What crosses the wire: strict JSON in, always-valid JSON out, checked ids and numbers.

Requests are held to strict JSON (RFC 8259): UTF-8 only, no ``NaN``/``Infinity``, no lone
surrogate escapes, at most :data:`MAX_DEPTH` levels of nesting; anything else is a 400 before a
run sees it. Responses are always valid JSON too: a value that JSON cannot carry (a ``NaN`` a
step computed, a lone surrogate in stored text) goes out as ``null`` / U+FFFD instead of making
the route fail, so one odd run cannot break the listing of its workflow.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..run_ids import is_safe_run_id

MAX_DEPTH = 100
"""The deepest nesting of arrays and objects a request body may have."""

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SEQ_MAX = 2**63 - 1  # the largest sequence number a storage (SQLite, PostgreSQL) can hold


class Problem(Exception):
    """An HTTP error answered as ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _NotJson(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NotJson(f"{name} is not JSON")


def parse_json(raw: bytes) -> Any:
    """Decode a request body as strict JSON.

    :raises Problem: 400 for invalid UTF-8, invalid JSON, ``NaN``/``Infinity``, a lone
        surrogate escape, or nesting deeper than :data:`MAX_DEPTH`.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Problem(400, f"the body is not UTF-8 (byte {exc.start}: {exc.reason})") from None
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except _NotJson as exc:
        raise Problem(400, f"invalid JSON body: {exc}") from None
    except json.JSONDecodeError as exc:
        raise Problem(400, f"invalid JSON body: {exc}") from None
    except RecursionError:
        raise Problem(400, f"invalid JSON body: nested deeper than {MAX_DEPTH}") from None
    _check_tree(data, check_text=_SURROGATE_ESCAPE.search(text) is not None)
    return data


def _check_tree(data: Any, *, check_text: bool) -> None:
    # Iterative, so that checking a deep body cannot itself overflow the stack.
    pending: list[tuple[Any, int]] = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise Problem(400, f"invalid JSON body: nested deeper than {MAX_DEPTH}")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if check_text and isinstance(key, str):
                    _check_text(key)
                pending.append((item, depth + 1))
        elif check_text and isinstance(value, str):
            _check_text(value)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise Problem(400, "invalid JSON body: a lone surrogate is not text") from None


_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False)  # made once: dumps() is hot


def dumps(value: Any) -> str:
    """``value`` as JSON text that every parser accepts (see the module docstring)."""
    try:
        text = _ENCODER.encode(value)
    except ValueError:
        return _ENCODER.encode(_clean(value))
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return _ENCODER.encode(_clean(value))
    return text


def encode(value: Any) -> bytes:
    """:func:`dumps`, as UTF-8 bytes."""
    return dumps(value).encode("utf-8")


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, dict):
        return {_clean(str(k)): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


class JSON(Response):
    """A JSON response encoded by :func:`encode` (so never invalid, never a 500)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return encode(content)


def run_id_of(raw: str | None, *, required: bool) -> str | None:
    """A client-supplied run id, checked against ``stepstream.run_ids.RUN_ID_PATTERN``.

    :raises Problem: 400 if it is missing (when ``required``) or does not match.
    """
    if not raw:
        if required:
            raise Problem(400, "runId required")
        return None
    if not is_safe_run_id(raw):
        raise Problem(
            400, f"invalid runId {raw[:40]!r}: 1-128 of A-Z a-z 0-9 _ . -, not starting with . or -"
        )
    return raw


def int_param(request: Request, name: str, default: int, *, low: int, high: int) -> int:
    """The integer query parameter ``name`` (``default`` when absent), within ``low..high``.

    :raises Problem: 400 when it is not an integer or out of range.
    """
    raw = request.query_params.get(name)
    return default if raw is None else bounded_int(raw, name, low=low, high=high)


def bounded_int(raw: str, name: str, *, low: int, high: int) -> int:
    """``raw`` as an integer within ``low..high`` (decimal digits only, at most 20 of them)."""
    text = raw.strip()
    digits = text[1:] if text.startswith("-") else text
    if not digits.isascii() or not digits.isdigit() or len(digits) > 20:
        raise Problem(400, f"{name} must be an integer")
    value = int(text)
    if not low <= value <= high:
        raise Problem(400, f"{name} must be between {low} and {high}")
    return value


def seq_param(raw: str, name: str) -> int:
    """A sequence number from a client: ``-1`` (before the first event) up to 2^63 - 1."""
    return bounded_int(raw, name, low=-1, high=_SEQ_MAX)
