"""Credentials out of what a model server says back, before it is stored or sent.

A model server's error body (or message) may echo the request's ``Authorization`` header or
the API key; the agent turns it into a :class:`~stepstream.errors.ModelError` whose message
and body reach the ``error`` event, the step's record, the stored run and every client. Every
such text goes through :func:`redact` first: the agent's own key is replaced wherever it
appears, and so is anything shaped like a credential (a bearer or basic token, an
``sk-...`` key, the value of an ``authorization`` / ``api-key`` / ``token`` / ``secret`` /
``password`` field).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = ["REDACTED", "redact"]

REDACTED = "[REDACTED]"
"""What a credential is replaced with."""

_SCHEME = re.compile(r"(?i)\b(bearer|basic|token)(\s+)[A-Za-z0-9._~+/=-]{4,}")
_KEY = re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{8,}")
_FIELD = re.compile(
    r"""(?ix)
    (authorization|proxy-authorization|x-api-key|api[-_]?key|access[-_]?token|
     refresh[-_]?token|secret|password)
    (["']?\s*[:=]\s*["']?)
    (?!\[REDACTED\])([^\s"',;}&]+(?:\s+(?!\[REDACTED\])[^\s"',;}&]+)?)
    """
)
_SECRET_KEYS = re.compile(
    r"(?i)^(authorization|proxy-authorization|x-api-key|api[-_]?key|access[-_]?token|"
    r"refresh[-_]?token|secret|password|cookie|set-cookie)$"
)
_SHORTEST = 4  # a shorter "key" would blank out ordinary words


def redact(value: Any, secrets: Iterable[str | None] = ()) -> Any:
    """Return ``value`` (a string, or JSON data) with credentials replaced by ``[REDACTED]``.

    :param secrets: Exact strings to remove wherever they appear (the agent's API key).
    """
    known = sorted({s for s in secrets if s and len(s) >= _SHORTEST}, key=len, reverse=True)
    return _redact(value, known)


def _redact(value: Any, known: list[str]) -> Any:
    if isinstance(value, str):
        return _text(value, known)
    if isinstance(value, dict):
        return {
            k: REDACTED if isinstance(k, str) and _SECRET_KEYS.match(k) and v else _redact(v, known)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(v, known) for v in value]
    return value


def _text(text: str, known: list[str]) -> str:
    for secret in known:
        text = text.replace(secret, REDACTED)
    text = _SCHEME.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)
    text = _KEY.sub(REDACTED, text)
    return _FIELD.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)
