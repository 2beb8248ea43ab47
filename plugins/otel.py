"""The optional ``otel`` plugin: runs and steps as OpenTelemetry spans.

It exports :class:`OpenTelemetryExporter`, an ordinary plugin that needs the extra
``stepstream[otel]`` (``opentelemetry-api``; an SDK to export with). Enable it by name, which
uses the global tracer provider, or register an instance bound to a provider of your own::

    pm = get_plugin_manager(plugins=["otel"])
    pm = get_plugin_manager(plugins=[("otel", OpenTelemetryExporter(provider))])

Each execution of a run (a start, or a resume) is a span ``workflow <workflow_id>``; each step
execution is a span ``step <step_id>``, a child of its run's span, or of the nested-workflow
step's span for the steps of a nested workflow. The step's span is the current span while the
step runs, so spans made inside it (an instrumented HTTP client) nest under it. Stream events
become span events of their step's span (of the run's span for ``start`` and
``plugin-error``), except ``tool-call-delta``: those are only counted, as the attribute
``stepstream.tokens`` of the step's span and of the run's span.

Spans are ended on the event loop: give the provider a ``BatchSpanProcessor`` so that no
export happens there (a ``SimpleSpanProcessor`` exports synchronously: for tests).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode, TracerProvider

from stepstream.errors import describe_error
from stepstream.events import StepResultEvent
from stepstream.hookspecs import hookimpl

if TYPE_CHECKING:
    from stepstream.events import Event
    from stepstream.result import WorkflowResult

__all__ = ["OpenTelemetryExporter"]

_PREFIX = "stepstream."
_MAX_TEXT = 256
# Events without a step id that belong to the step running when they are emitted.
_AGENT_EVENTS = frozenset({"tool-call-streaming-start", "tool-call", "tool-result", "error"})
# The small scalar fields copied onto span events (never inputs, outputs or payloads).
_EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "step-result": ("status", "error"),
    "tool-call-streaming-start": ("tool_call_id", "tool_name"),
    "tool-call": ("tool_call_id", "tool_name"),
    "tool-result": ("tool_call_id", "tool_name"),
    "error": ("error",),
    "plugin-error": ("plugin", "hook", "error"),
}


@dataclass
class _StepSpan:
    run_id: str
    span: Span
    tokens: int = 0
    failed: bool = False


@dataclass
class _RunSpans:
    span: Span | None
    tokens: int = 0
    steps: dict[str, _StepSpan] = field(default_factory=dict)
    """Open step spans by step id, in the order they started (the last is the innermost)."""


class OpenTelemetryExporter:
    """Turns runs, steps and stream events into OpenTelemetry spans.

    :param tracer_provider: The provider to get the tracer from; ``None`` uses the global one
        (``opentelemetry.trace.get_tracer``), also when it is set after this plugin is made.
    :param tracer_name: The instrumentation scope's name.
    """

    def __init__(
        self, tracer_provider: TracerProvider | None = None, *, tracer_name: str = "stepstream"
    ) -> None:
        self.tracer = trace.get_tracer(tracer_name, tracer_provider=tracer_provider)
        self._runs: dict[str, _RunSpans] = {}
        # The step whose body runs in this context: the current span may be a child of its
        # span (an HTTP client's), so the current span alone would not tell.
        self._running: ContextVar[_StepSpan | None] = ContextVar("stepstream_otel", default=None)

    # -- runs -------------------------------------------------------------------------------------

    @hookimpl
    def before_workflow_run(self, run_id: str, workflow_id: str) -> None:
        self._runs[run_id] = _RunSpans(self._start_run_span(run_id, workflow_id))

    @hookimpl
    def after_workflow_run(self, run_id: str, workflow_id: str, result: WorkflowResult) -> None:
        # Canceling a suspended run ends it without an execution: give it a span of its own.
        run = self._runs.pop(run_id, None) or _RunSpans(None)
        span = run.span or self._start_run_span(run_id, workflow_id)
        for step_span in run.steps.values():  # left open only if a hook of ours was skipped
            step_span.span.end()
        span.set_attribute(_PREFIX + "status", result.status)
        if run.tokens:
            span.set_attribute(_PREFIX + "tokens", run.tokens)
        if result.status == "failed":
            span.set_status(Status(StatusCode.ERROR, result.error))
        elif result.status == "success":
            span.set_status(Status(StatusCode.OK))
        span.end()

    def _start_run_span(self, run_id: str, workflow_id: str) -> Span:
        return self.tracer.start_span(
            f"workflow {workflow_id}",
            attributes={_PREFIX + "run_id": run_id, _PREFIX + "workflow_id": workflow_id},
        )

    # -- steps ------------------------------------------------------------------------------------

    @hookimpl
    def wrap_step_run(self, run_id: str, step_id: str) -> contextlib.AbstractContextManager[None]:
        return self._step_is_current(run_id, step_id)

    @contextlib.contextmanager
    def _step_is_current(self, run_id: str, step_id: str) -> Iterator[None]:
        step = self._open_step(run_id, step_id) or self._start_step(run_id, step_id)
        token = otel_context.attach(trace.set_span_in_context(step.span))
        running = self._running.set(step)
        try:
            yield
        # Suspend and CancelledError derive from BaseException, so they pass: a suspension is
        # no error, and a cancel is marked by the step-result (also one before the body ran).
        except Exception as exc:
            self._fail(step, describe_error(exc), exc)
            raise
        finally:
            self._running.reset(running)
            otel_context.detach(token)

    @hookimpl
    def after_step_run(self, run_id: str, step_id: str, status: str) -> None:
        step = self._open_step(run_id, step_id)
        if step is None:
            return
        step.span.set_attribute(_PREFIX + "status", status)
        if status == "success":
            step.span.set_status(Status(StatusCode.OK))

    def _start_step(self, run_id: str, step_id: str) -> _StepSpan:
        run = self._runs.setdefault(run_id, _RunSpans(None))
        # A nested workflow's steps run inside its step; else the run's span is the parent
        # (without one, the current span: the caller's).
        outer = self._running.get()
        parent = outer.span if outer is not None and outer.run_id == run_id else run.span
        span = self.tracer.start_span(
            f"step {step_id}",
            context=trace.set_span_in_context(parent) if parent is not None else None,
            attributes={_PREFIX + "run_id": run_id, _PREFIX + "step_id": step_id},
        )
        step = run.steps[step_id] = _StepSpan(run_id, span)
        return step

    def _end_step(self, run_id: str, step_id: str) -> None:
        run = self._runs.get(run_id)
        step = run.steps.pop(step_id, None) if run is not None else None
        if run is not None and step is not None:
            if step.tokens:
                step.span.set_attribute(_PREFIX + "tokens", step.tokens)
                run.tokens += step.tokens
            step.span.end()

    def _open_step(self, run_id: str, step_id: str) -> _StepSpan | None:
        run = self._runs.get(run_id)
        return run.steps.get(step_id) if run is not None else None

    @staticmethod
    def _fail(step: _StepSpan, description: str, error: BaseException | None = None) -> None:
        if error is not None:
            step.span.record_exception(error)
        step.span.set_status(Status(StatusCode.ERROR, description))
        step.failed = True

    # -- events -----------------------------------------------------------------------------------

    @hookimpl
    def on_event(self, event: Event) -> None:
        kind = event.type
        step: _StepSpan | None = None
        if kind == "tool-call-delta":  # the hot path: count, nothing else
            step = self._running_step(event.run_id)
            if step is not None:
                step.tokens += 1
            return
        step_id: str | None = getattr(event, "step_id", None)
        span: Span | None = None
        if kind == "step-start" and step_id is not None:
            step = self._start_step(event.run_id, step_id)
        elif step_id is not None:
            step = self._open_step(event.run_id, step_id)
        elif kind in _AGENT_EVENTS:
            step = self._running_step(event.run_id)
        elif (run := self._runs.get(event.run_id)) is not None:
            span = run.span
        if step is not None:
            span = step.span
        if span is not None:
            span.add_event(kind, _event_attributes(event))
        if isinstance(event, StepResultEvent) and step is not None and not step.failed:
            # Failures the body did not raise: a nested workflow's failed step, an invalid
            # suspend payload, a cancel while the step-start waited for the consumer.
            if event.status == "canceled":
                self._fail(step, "canceled")
            elif event.status == "failed":
                self._fail(step, event.error or "failed")
        if kind in ("step-finish", "step-suspended") and step_id is not None:
            self._end_step(event.run_id, step_id)

    def _running_step(self, run_id: str) -> _StepSpan | None:
        """The step emitting now (right with parallel steps), else the run's innermost open
        step (for an event emitted outside every step's context)."""
        step = self._running.get()
        if step is not None and step.run_id == run_id:
            return step
        run = self._runs.get(run_id)
        return next(reversed(run.steps.values())) if run is not None and run.steps else None


def _event_attributes(event: Event) -> dict[str, str | int | bool]:
    attributes: dict[str, str | int | bool] = {_PREFIX + "seq": event.seq}
    for name in _EVENT_FIELDS.get(event.type, ()):
        value = _scalar(getattr(event, name))
        if value is not None:
            attributes[_PREFIX + name] = value
    return attributes


def _scalar(value: Any) -> str | int | bool | None:
    if isinstance(value, dict):  # a model error's body: keep its message only
        value = value.get("message")
    if isinstance(value, str):
        return value[:_MAX_TEXT]
    if isinstance(value, bool | int):
        return value
    return None
