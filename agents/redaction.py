"""Credentials out of what is stored, sent or logged: one rule for the agent and the logger.

A model server's error body (or message) may echo the request's ``Authorization`` header or
the API key; the agent turns it into a :class:`~stepstream.errors.ModelError` whose message
and body reach the ``error`` event, the step's record, the stored run and every client. The
``logger`` plugin writes events' inputs and outputs. Every such text goes through
:func:`redact` first.

What is a credential:

* a value whose key is a secret's name: the key's last word (``_``, ``-`` and camelCase split
  words) is ``token``, ``secret``, ``password``, ``passwd``, ``authorization``, ``cookie``,
  ``credential(s)``, ``apikey``, or its last two are ``api key`` / ``private key``. So
  ``api_key``, ``OPENAI_API_KEY``, ``accessToken``, ``client-secret`` are hidden and
  ``max_tokens``, ``prompt_tokens``, ``tokenizer``, ``secretary`` are not;
* in text, the value after such a name and ``=`` or ``:`` (``password=hunter2``);
* in text, a token by its shape: ``Bearer ...`` / ``Basic ...``, an ``sk-...`` (``pk-``,
  ``rk-``) key;
* wherever it appears, each exact string given as ``secrets`` (the agent's own key).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = ["REDACTED", "is_secret_key", "redact"]

REDACTED = "[REDACTED]"
"""What a credential is replaced with."""

_SCHEME = re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]{4,}")
_KEY = re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{8,}")
# Any ``name=value`` / ``"name": "value"``; whether the name is a secret's is decided by
# is_secret_key, so text and mappings follow one rule.
_NAME = re.compile(r"""([A-Za-z][A-Za-z0-9_-]*)(["']?\s*[:=]\s*["']?)""")
_VALUE = re.compile(r"""(?:(?i:bearer|basic)\s+)?[^\s"',;}&]+""")
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_LAST_WORDS = frozenset(
    {"token", "secret", "password", "passwd", "authorization", "cookie", "credential"}
    | {"credentials", "apikey"}
)
_LAST_PAIRS = frozenset({("api", "key"), ("private", "key")})
_SHORTEST = 4  # a shorter "key" would blank out ordinary words


def is_secret_key(name: str) -> bool:
    """Whether ``name`` (a mapping key or a ``name=value`` name) names a credential."""
    words = _CAMEL.sub(r"\1_\2", name).lower().replace("-", "_").split("_")
    return words[-1] in _LAST_WORDS or tuple(words[-2:]) in _LAST_PAIRS


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
            k: REDACTED if isinstance(k, str) and v and is_secret_key(k) else _redact(v, known)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(v, known) for v in value]
    return value


def _text(text: str, known: list[str]) -> str:
    for secret in known:
        text = text.replace(secret, REDACTED)
    text = _fields(text)
    text = _SCHEME.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)
    return _KEY.sub(REDACTED, text)


def _fields(text: str) -> str:
    """``text`` with the value after each secret's name (and ``=`` or ``:``) redacted."""
    parts: list[str] = []
    pos = 0
    for name in _NAME.finditer(text):
        if name.start() < pos or not is_secret_key(name.group(1)):
            continue  # inside a value already redacted, or an ordinary name
        value = _VALUE.match(text, name.end())
        if value is None or text.startswith(REDACTED, name.end()):
            continue
        parts += (text[pos : name.end()], REDACTED)
        pos = value.end()
    parts.append(text[pos:])
    return "".join(parts)
