"""The built-in ``logger`` plugin: one concise line per stream event through stdlib logging.

Lines go to the logger ``stepstream.events``: ``INFO`` for most events, ``DEBUG`` for each
``tool-call-delta``, ``WARNING`` for failures (a failed or canceled step, a model ``error``, a
``plugin-error``). Each record carries ``run_id``, ``step_id``, ``seq`` and ``event_type`` as
extras for structured handlers. Values are shortened, and anything that looks like a secret
(keys named like ``api_key``/``authorization``/``token``/``password``/``secret``, ``sk-...``
keys, ``Bearer ...`` headers) is replaced by ``[redacted]``: credentials never reach the logs.
Nothing is formatted unless the level is enabled.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from stepstream.events import Event
from stepstream.hookspecs import hookimpl

__all__ = ["LoggerPlugin", "redact"]

_SECRET_KEY = re.compile(r"(api[_-]?key|authorization|password|passwd|secret|token)", re.I)
_SECRET_TEXT = re.compile(
    r"(sk-[A-Za-z0-9_\-]{6,}|Bearer\s+\S+"
    r"|(?:api[_-]?key|authorization|password|passwd|secret|token)\s*[=:]\s*\S+)",
    re.I,
)
_MAX = 160


def redact(value: Any) -> Any:
    """``value`` with secret-looking keys and strings replaced by ``[redacted]``."""
    if isinstance(value, dict):
        return {
            k: "[redacted]" if isinstance(k, str) and _SECRET_KEY.search(k) else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return _SECRET_TEXT.sub("[redacted]", value)
    return value


def _short(value: Any) -> str:
    text = json.dumps(redact(value), ensure_ascii=False, default=str)
    return text if len(text) <= _MAX else text[: _MAX - 1] + "…"


class LoggerPlugin:
    """Logs every event of every run; silent unless ``stepstream.events`` is enabled."""

    def __init__(self, logger_name: str = "stepstream.events") -> None:
        self.log = logging.getLogger(logger_name)

    @hookimpl
    def on_event(self, event: Event) -> None:
        """Log one line for ``event``."""
        level = _level(event)
        if not self.log.isEnabledFor(level):
            return
        step_id = getattr(event, "step_id", None)
        self.log.log(
            level,
            "run %s #%d %s%s",
            event.run_id[:8],
            event.seq,
            event.type,
            _describe(event),
            extra={
                "run_id": event.run_id,
                "step_id": step_id,
                "seq": event.seq,
                "event_type": event.type,
            },
        )


def _level(event: Event) -> int:
    if event.type == "tool-call-delta":
        return logging.DEBUG
    if event.type in ("error", "plugin-error"):
        return logging.WARNING
    if event.type == "step-result" and event.status != "success":
        return logging.WARNING
    return logging.INFO


def _describe(event: Event) -> str:
    if event.type == "step-start":
        return f" {event.step_id} input={_short(event.input_data)}"
    if event.type == "step-result":
        shown = _short(event.output) if event.status == "success" else redact(event.error)
        return f" {event.step_id} {event.status} {shown}"
    if event.type in ("step-finish", "step-suspended", "step-output"):
        return f" {event.step_id}"
    if event.type == "tool-call-delta":
        return f" {event.name} {_short(event.args_text_delta)}"
    if event.type == "tool-call-streaming-start":
        return f" {event.name}"
    if event.type in ("tool-call", "tool-result"):
        return f" {event.tool_name} args={_short(event.args)}"
    if event.type == "error":
        return f" {_short(event.error)}"
    if event.type == "plugin-error":
        return f" {event.plugin}.{event.hook}: {redact(event.error)}"
    return ""
