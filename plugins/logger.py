"""The built-in ``logger`` plugin: one concise line per stream event through stdlib logging.

Lines go to the logger ``stepstream.events``: ``INFO`` for most events, ``DEBUG`` for each
``tool-call-delta``, ``WARNING`` for failures (a failed or canceled step, a model ``error``, a
``plugin-error``). Each record carries ``run_id``, ``step_id``, ``seq`` and ``event_type`` as
extras for structured handlers. Values are shortened, and credentials are replaced by
``[REDACTED]`` by the rule of :mod:`stepstream.agents.redaction` (keys by their exact names:
``api_key``, ``authorization``, ``password``, ``accessToken``... but not ``max_tokens`` or
``tokenizer``; ``sk-...`` keys and ``Bearer ...`` tokens by their shape): credentials never
reach the logs.

Observing costs nothing per event unless ``INFO`` is enabled: below that (Python's default
is ``WARNING``) its ``wants_events()`` tells the plugin manager so, its ``on_event`` is then
out of the hook, and a failed step's ``WARNING`` line comes from ``on_step_error`` instead
(called only when a step fails; ``event_type`` is ``step-error``, ``seq`` is ``None``).
Errors of plugins are logged by the plugin manager (logger ``stepstream.plugins``) either
way. The level is read as each run starts.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from stepstream.agents.redaction import redact
from stepstream.events import Event
from stepstream.hookspecs import hookimpl

__all__ = ["LoggerPlugin"]

_MAX = 160


def _short(value: Any) -> str:
    text = json.dumps(redact(value), ensure_ascii=False, default=str)
    return text if len(text) <= _MAX else text[: _MAX - 1] + "…"


class LoggerPlugin:
    """Logs every event of every run; silent unless ``stepstream.events`` is enabled."""

    def __init__(self, logger_name: str = "stepstream.events") -> None:
        self.log = logging.getLogger(logger_name)

    def wants_events(self) -> bool:
        """Whether lines per event are wanted now (the logger is enabled for ``INFO``)."""
        return self.log.isEnabledFor(logging.INFO)

    @hookimpl
    def on_step_error(self, run_id: str, step_id: str, error: BaseException) -> None:
        """Log a failed step at ``WARNING`` when events are not logged (else its failed
        ``step-result`` line says it)."""
        if self.log.isEnabledFor(logging.INFO) or not self.log.isEnabledFor(logging.WARNING):
            return
        self.log.warning(
            "run %s %s failed: %s",
            run_id[:8],
            step_id,
            redact(f"{type(error).__name__}: {error}"),
            extra={"run_id": run_id, "step_id": step_id, "seq": None, "event_type": "step-error"},
        )

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
