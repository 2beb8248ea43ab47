"""The optional ``otel`` plugin: runs, steps, agents, model calls and tools as OpenTelemetry
spans that follow the GenAI semantic conventions (``gen_ai.*``).

It exports :class:`OpenTelemetryExporter`, an ordinary plugin that needs the extra
``stepstream[otel]``. Enable it by name, which uses the global tracer provider, or register an
instance bound to a provider of your own::

    pm = get_plugin_manager(plugins=["otel"])
    pm = get_plugin_manager(plugins=[("otel", OpenTelemetryExporter(provider))])

Spans (``docs/observability.md`` lists every attribute):

* ``invoke_workflow <workflow_id>``: one per execution of a run (a start, a resume); a
  child of the caller's current span, and for a resumed or recovered run a child of its first
  execution's span, in the same trace (the trace context is kept in ``RunState.meta["otel"]``,
  stored with a durable run);
* ``step <step_id>``: each step execution, a child of its run's span (of the nested-workflow
  step's span for a nested workflow's steps); current while the step runs, so spans made
  inside it (``opentelemetry-instrumentation-openai-v2``'s, an HTTP client's) nest under it;
* an agent step's span is renamed ``invoke_agent <agent name>`` when its answer starts;
* ``chat <model>``: each model response of an agent (from its ``step-usage`` event, with the
  request's start and the response's end as its times), a child of the agent's span;
* ``execute_tool <tool name>``: each tool call, from its ``tool-call`` to its ``tool-result``.

Other stream events become span events of their step's span (of the run's span for ``start``
and ``plugin-error``), except ``tool-call-delta``: those are only counted
(``stepstream.text_chunks``). Prompts and completions are recorded only when asked
(``capture_content=True`` or ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``).
``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental`` drops the attributes the latest
conventions replaced (``gen_ai.system``, beside ``gen_ai.provider.name``).

Spans are ended on the event loop: give the provider a ``BatchSpanProcessor`` so that no
export happens there (a ``SimpleSpanProcessor`` exports synchronously: for tests).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from stepstream.errors import describe_error
from stepstream.events import (
    StepResultEvent,
    StepUsageEvent,
    ToolCallEvent,
    ToolCallStreamingStartEvent,
    ToolResultEvent,
)
from stepstream.hookspecs import hookimpl

if TYPE_CHECKING:
    from stepstream.events import Event
    from stepstream.result import WorkflowResult

__all__ = ["OpenTelemetryExporter", "traceparent_context"]

_PREFIX = "stepstream."
_MAX_TEXT = 256
_META_KEY = "otel"
_PROPAGATOR = TraceContextTextMapPropagator()
# Events without a step id that belong to the step running when they are emitted.
_AGENT_EVENTS = frozenset({"tool-call-streaming-start", "tool-call", "tool-result", "error"})
# The small scalar fields copied onto span events (never inputs, outputs or payloads).
_EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "step-result": ("status", "error"),
    "tool-call-streaming-start": ("tool_call_id", "tool_name"),
    "error": ("error",),
    "plugin-error": ("plugin", "hook", "error"),
}


@dataclass
class _Spent:
    """Token usage summed onto an agent's or a run's span."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost: float | None = None

    def add(self, event: StepUsageEvent) -> None:
        self.input_tokens += event.input_tokens
        self.output_tokens += event.output_tokens
        if event.cost is not None:
            self.cost = (self.cost or 0.0) + event.cost

    def attributes(self) -> dict[str, int | float]:
        out: dict[str, int | float] = {
            "gen_ai.usage.input_tokens": self.input_tokens,
            "gen_ai.usage.output_tokens": self.output_tokens,
        }
        if self.cost is not None:
            out[_PREFIX + "cost"] = self.cost
        return out


@dataclass
class _StepSpan:
    run_id: str
    span: Span
    chunks: int = 0
    failed: bool = False
    spent: _Spent | None = None
    """Set once the step is an agent's (or reports model usage)."""
    tools: dict[str, Span] = field(default_factory=dict)


@dataclass
class _RunSpans:
    span: Span | None
    chunks: int = 0
    spent: _Spent | None = None
    steps: dict[str, _StepSpan] = field(default_factory=dict)
    """Open step spans by step id, in the order they started (the last is the innermost)."""


class OpenTelemetryExporter:
    """Turns runs, steps, agents, model calls, tools and stream events into spans.

    :param tracer_provider: The provider to get the tracer from; ``None`` uses the global one
        (``opentelemetry.trace.get_tracer``), also when it is set after this plugin is made.
    :param tracer_name: The instrumentation scope's name.
    :param capture_content: Record prompts, completions, tool arguments and results as span
        attributes; ``None`` reads ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``
        (off unless ``true``). They may hold personal or secret data: off by default.
    """

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        *,
        tracer_name: str = "stepstream",
        capture_content: bool | None = None,
    ) -> None:
        self.tracer = trace.get_tracer(tracer_name, tracer_provider=tracer_provider)
        if capture_content is None:
            flag = os.environ.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "")
            capture_content = flag.strip().lower() == "true"
        self.capture_content = capture_content
        opt_in = os.environ.get("OTEL_SEMCONV_STABILITY_OPT_IN", "")
        self.latest_only = "gen_ai_latest_experimental" in {v.strip() for v in opt_in.split(",")}
        self._runs: dict[str, _RunSpans] = {}
        # The step whose body runs in this context: the current span may be a child of its
        # span (an HTTP client's), so the current span alone would not tell.
        self._running: ContextVar[_StepSpan | None] = ContextVar("stepstream_otel", default=None)

    # -- runs -------------------------------------------------------------------------------------

    @hookimpl
    def before_workflow_run(self, run_id: str, workflow_id: str, meta: dict[str, Any]) -> None:
        kept = meta.get(_META_KEY)
        parent = None
        if isinstance(kept, dict) and isinstance(kept.get("traceparent"), str):
            # A resume or a recovery, maybe in another process: continue the run's trace.
            parent = _PROPAGATOR.extract({"traceparent": kept["traceparent"]})
        span = self._start_run_span(run_id, workflow_id, parent)
        self._runs[run_id] = _RunSpans(span)
        if parent is None:
            carrier: dict[str, str] = {}
            _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
            if "traceparent" in carrier:
                meta[_META_KEY] = {"traceparent": carrier["traceparent"]}

    @hookimpl
    def after_workflow_run(self, run_id: str, workflow_id: str, result: WorkflowResult) -> None:
        # Canceling a suspended run ends it without an execution: give it a span of its own.
        run = self._runs.pop(run_id, None) or _RunSpans(None)
        span = run.span or self._start_run_span(run_id, workflow_id, None)
        for step_span in run.steps.values():  # left open only if a hook of ours was skipped
            step_span.span.end()
        span.set_attribute(_PREFIX + "status", result.status)
        if run.chunks:
            span.set_attribute(_PREFIX + "text_chunks", run.chunks)
        if run.spent is not None:
            span.set_attributes(run.spent.attributes())
        if result.status == "failed":
            span.set_status(Status(StatusCode.ERROR, result.error))
        elif result.status == "success":
            span.set_status(Status(StatusCode.OK))
        span.end()

    def _start_run_span(
        self, run_id: str, workflow_id: str, parent: otel_context.Context | None
    ) -> Span:
        return self.tracer.start_span(
            f"invoke_workflow {workflow_id}",
            context=parent,
            attributes={
                "gen_ai.operation.name": "invoke_workflow",
                _PREFIX + "run_id": run_id,
                _PREFIX + "workflow_id": workflow_id,
            },
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
        if run is None or step is None:
            return
        for tool_span in step.tools.values():  # a tool the step never saw return
            tool_span.set_status(Status(StatusCode.ERROR, "no tool-result"))
            tool_span.end()
        if step.chunks:
            step.span.set_attribute(_PREFIX + "text_chunks", step.chunks)
            run.chunks += step.chunks
        if step.spent is not None:
            step.span.set_attributes(step.spent.attributes())
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
                step.chunks += 1
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
            if self._gen_ai(event, step):
                return
        if span is not None:
            span.add_event(kind, _event_attributes(event))
        if isinstance(event, StepResultEvent) and step is not None:
            if event.status == "success" and step.spent is not None and self.capture_content:
                text = event.output.get("text") if isinstance(event.output, dict) else None
                if isinstance(text, str):
                    messages = [{"role": "assistant", "parts": [{"type": "text", "content": text}]}]
                    step.span.set_attribute("gen_ai.output.messages", json.dumps(messages))
            # Failures the body did not raise: a nested workflow's failed step, an invalid
            # suspend payload, a cancel while the step-start waited for the consumer.
            if not step.failed and event.status == "canceled":
                self._fail(step, "canceled")
            elif not step.failed and event.status == "failed":
                self._fail(step, event.error or "failed")
        if kind in ("step-finish", "step-suspended") and step_id is not None:
            self._end_step(event.run_id, step_id)

    def _gen_ai(self, event: Event, step: _StepSpan) -> bool:
        """Handle the events that make GenAI spans; return whether the event is done with
        (tool calls and usage become spans, not span events)."""
        if isinstance(event, ToolCallStreamingStartEvent):
            step.span.update_name(f"invoke_agent {event.name}")
            step.spent = step.spent or _Spent()
            step.span.set_attributes(
                {
                    "gen_ai.operation.name": "invoke_agent",
                    "gen_ai.agent.name": event.name,
                    "gen_ai.agent.id": event.tool_call_id,
                }
            )
            prompt = event.args.get("prompt") if isinstance(event.args, dict) else None
            if self.capture_content and isinstance(prompt, str):
                messages = [{"role": "user", "parts": [{"type": "text", "content": prompt}]}]
                step.span.set_attribute("gen_ai.input.messages", json.dumps(messages))
            return False
        if isinstance(event, StepUsageEvent):
            self._chat_span(event, step)
            return True
        if isinstance(event, ToolCallEvent):
            attributes: dict[str, str] = {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": event.tool_name,
                "gen_ai.tool.call.id": event.tool_call_id,
                "gen_ai.tool.type": "function",
            }
            if self.capture_content:
                attributes["gen_ai.tool.call.arguments"] = json.dumps(event.args)
            step.tools[event.tool_call_id] = self.tracer.start_span(
                f"execute_tool {event.tool_name}",
                context=trace.set_span_in_context(step.span),
                attributes=attributes,
            )
            return True
        if isinstance(event, ToolResultEvent):
            tool_span = step.tools.pop(event.tool_call_id, None)
            if tool_span is None:
                return True
            result = event.result
            if self.capture_content:
                tool_span.set_attribute("gen_ai.tool.call.result", json.dumps(result))
            if isinstance(result, dict) and set(result) == {"error"}:
                tool_span.set_status(Status(StatusCode.ERROR, str(result["error"])[:_MAX_TEXT]))
                tool_span.set_attribute("error.type", "tool_error")
            tool_span.end()
            return True
        return False

    def _chat_span(self, event: StepUsageEvent, step: _StepSpan) -> None:
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": event.provider,
            "gen_ai.request.model": event.model,
            "gen_ai.usage.input_tokens": event.input_tokens,
            "gen_ai.usage.output_tokens": event.output_tokens,
        }
        if not self.latest_only:
            attributes["gen_ai.system"] = event.provider  # v1.36's name of the provider
        if event.response_model:
            attributes["gen_ai.response.model"] = event.response_model
        if event.finish_reason:
            attributes["gen_ai.response.finish_reasons"] = (event.finish_reason,)
        if event.cached_input_tokens:
            attributes["gen_ai.usage.cache_read.input_tokens"] = event.cached_input_tokens
        if event.reasoning_tokens:
            attributes["gen_ai.usage.reasoning.output_tokens"] = event.reasoning_tokens
        if event.cost is not None:
            attributes[_PREFIX + "cost"] = event.cost
        span = self.tracer.start_span(
            f"chat {event.model}",
            context=trace.set_span_in_context(step.span),
            attributes=attributes,
            start_time=event.started_at * 1_000_000,
        )
        span.end(end_time=max(event.ended_at, event.started_at) * 1_000_000)
        step.spent = step.spent or _Spent()
        step.spent.add(event)
        model = {"gen_ai.request.model": event.model, "gen_ai.provider.name": event.provider}
        if not self.latest_only:
            model["gen_ai.system"] = event.provider
        step.span.set_attributes(model)
        run = self._runs.get(event.run_id)
        if run is not None:
            run.spent = run.spent or _Spent()
            run.spent.add(event)

    def _running_step(self, run_id: str) -> _StepSpan | None:
        """The step emitting now (right with parallel steps), else the run's innermost open
        step (for an event emitted outside every step's context)."""
        step = self._running.get()
        if step is not None and step.run_id == run_id:
            return step
        run = self._runs.get(run_id)
        return next(reversed(run.steps.values())) if run is not None and run.steps else None


@contextlib.contextmanager
def traceparent_context(traceparent: str | None) -> Iterator[None]:
    """Make the remote span named by a W3C ``traceparent`` header current, so that runs
    started or streamed inside the block become its children (a server starting a run for a
    request that carries one)::

        with traceparent_context(request.headers.get("traceparent")):
            stream = run.stream(input_data=data)

    A missing or malformed header changes nothing.
    """
    if not traceparent:
        yield
        return
    token = otel_context.attach(_PROPAGATOR.extract({"traceparent": traceparent}))
    try:
        yield
    finally:
        otel_context.detach(token)


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
