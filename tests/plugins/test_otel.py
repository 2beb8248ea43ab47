"""The ``otel`` plugin: spans, their parents, statuses and events, on a provider of the test's."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk", reason="needs the extra stepstream[otel]")

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import StatusCode
from pydantic import BaseModel

from stepstream import (
    PluginManager,
    StepContext,
    Workflow,
    WorkflowResult,
    get_plugin_manager,
    step,
)
from stepstream.agents import Agent, RetryPolicy
from stepstream.events import ToolCallDeltaEvent
from stepstream.plugins.otel import OpenTelemetryExporter
from stepstream.testing import ModelServer, Recorder, TextReply

from ..conftest import assert_no_tasks_left


@pytest.fixture
def otel_pm(
    provider: TracerProvider, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> Iterator[PluginManager]:
    """Strict, so a raise in the plugin fails the test; OTel's own complaints (a span ended
    twice, a context detached in the wrong place) are logged, so they fail it too."""
    plugin = OpenTelemetryExporter(provider)
    with caplog.at_level(logging.WARNING, logger="opentelemetry"):
        yield get_plugin_manager(
            load_entrypoints=False, strict=True, plugins=[("otel", plugin), ("recorder", recorder)]
        )
    assert [r for r in caplog.records if r.name.startswith("opentelemetry")] == []


async def _start(wf: Workflow, pm: PluginManager, input_data: Any = None) -> WorkflowResult:
    run = await wf.create_run(plugin_manager=pm)
    return await run.start(input_data if input_data is not None else {})


def _by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    spans = exporter.get_finished_spans()
    named = {span.name: span for span in spans}
    assert len(named) == len(spans), "span names repeat"
    return named


def _parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def _span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


def _event_names(span: ReadableSpan) -> list[str]:
    return [event.name for event in span.events]


@step(id="first")
async def first(ctx: StepContext[Any]) -> Any:
    return {"n": 1}


@step(id="second")
async def second(ctx: StepContext[Any]) -> Any:
    return {"n": 2}


@step(id="bad")
async def bad(ctx: StepContext[Any]) -> Any:
    raise LookupError("nothing here")


class Value(BaseModel):
    value: float


@step(id="add-one")
async def add_one(ctx: StepContext[Value]) -> Value:
    return Value(value=ctx.input_data.value + 1)


def test_enabled_by_name_with_the_global_provider() -> None:
    pm = get_plugin_manager(load_entrypoints=False, plugins=["otel"])
    assert isinstance(pm.get_plugin("otel"), OpenTelemetryExporter)
    assert pm.source_of("otel") == "builtin"


@pytest.mark.asyncio
async def test_run_and_step_spans_nest_and_succeed(
    otel_pm: PluginManager, span_exporter: InMemorySpanExporter
) -> None:
    result = await _start(Workflow(id="wf").then(first).then(second).commit(), otel_pm)
    spans = _by_name(span_exporter)
    assert set(spans) == {"invoke_workflow wf", "step first", "step second"}
    run_span = spans["invoke_workflow wf"]
    assert dict(run_span.attributes or {}) == {
        "gen_ai.operation.name": "invoke_workflow",
        "stepstream.run_id": result.run_id,
        "stepstream.workflow_id": "wf",
        "stepstream.status": "success",
    }
    assert run_span.status.status_code is StatusCode.OK
    assert _event_names(run_span) == ["start"]
    for name in ("first", "second"):
        step_span = spans[f"step {name}"]
        assert _parent_of(step_span) == _span_id(run_span)
        assert step_span.status.status_code is StatusCode.OK
        assert (step_span.attributes or {})["stepstream.step_id"] == name
        assert (step_span.attributes or {})["stepstream.status"] == "success"
        assert _event_names(step_span) == ["step-start", "step-result", "step-finish"]
        seqs = [(event.attributes or {})["stepstream.seq"] for event in step_span.events]
        assert seqs == sorted(seqs) and seqs[0] > 0


@pytest.mark.asyncio
async def test_failed_step_and_run_are_errors_with_the_error_text(
    otel_pm: PluginManager, span_exporter: InMemorySpanExporter
) -> None:
    result = await _start(Workflow(id="wf").then(bad).commit(), otel_pm)
    spans = _by_name(span_exporter)
    step_span, run_span = spans["step bad"], spans["invoke_workflow wf"]
    assert step_span.status.status_code is StatusCode.ERROR
    assert step_span.status.description == "LookupError: nothing here"
    assert "exception" in _event_names(step_span)
    assert (step_span.attributes or {})["stepstream.status"] == "failed"
    [step_result] = [e for e in step_span.events if e.name == "step-result"]
    assert (step_result.attributes or {})["stepstream.error"] == "LookupError: nothing here"
    assert run_span.status.status_code is StatusCode.ERROR
    assert run_span.status.description == result.error == "LookupError: nothing here"


@pytest.mark.asyncio
async def test_invalid_output_fails_the_step_span(
    otel_pm: PluginManager, span_exporter: InMemorySpanExporter
) -> None:
    @step(id="liar", output_schema=Value)
    async def liar(ctx: StepContext[Any]) -> Any:
        return {"value": "not a number"}

    await _start(Workflow(id="wf").then(liar).commit(), otel_pm)
    status = _by_name(span_exporter)["step liar"].status
    assert status.status_code is StatusCode.ERROR
    assert (status.description or "").startswith("OutputValidationError: step 'liar'")


class Reason(BaseModel):
    reason: str


@pytest.mark.asyncio
async def test_invalid_suspend_payload_fails_the_step_span_after_its_body(
    otel_pm: PluginManager, span_exporter: InMemorySpanExporter
) -> None:
    """The body ended with ``Suspend`` (not an error); the payload check fails the step."""

    @step(id="ask", suspend_schema=Reason)
    async def ask(ctx: StepContext[Any]) -> Any:
        ctx.suspend({"wrong": 1})

    result = await _start(Workflow(id="wf").then(ask).commit(), otel_pm)
    step_span = _by_name(span_exporter)["step ask"]
    assert step_span.status.status_code is StatusCode.ERROR
    assert step_span.status.description == result.error
    assert (step_span.attributes or {})["stepstream.status"] == "failed"


@pytest.mark.asyncio
async def test_suspended_step_is_not_an_error_and_resume_is_a_new_run_span(
    otel_pm: PluginManager, span_exporter: InMemorySpanExporter
) -> None:
    @step(id="gate")
    async def gate(ctx: StepContext[Any]) -> Any:
        if ctx.resume_data is None:
            ctx.suspend({"waiting": True})
        return {"approved": True}

    run = await Workflow(id="wf").then(gate).commit().create_run(plugin_manager=otel_pm)
    await run.start({})
    spans = _by_name(span_exporter)
    step_span, run_span = spans["step gate"], spans["invoke_workflow wf"]
    assert step_span.status.status_code is StatusCode.UNSET
    assert (step_span.attributes or {})["stepstream.status"] == "suspended"
    assert _event_names(step_span) == ["step-start", "step-suspended"]
    assert run_span.status.status_code is StatusCode.UNSET
    assert (run_span.attributes or {})["stepstream.status"] == "suspended"

    span_exporter.clear()
    assert (await run.resume(resume_data={"ok": True})).status == "success"
    first_run = run_span
    spans = _by_name(span_exporter)
    assert _parent_of(spans["step gate"]) == _span_id(spans["invoke_workflow wf"])
    assert spans["step gate"].status.status_code is StatusCode.OK
    # The resumed execution continues the run's trace, as a child of its first span.
    assert _parent_of(spans["invoke_workflow wf"]) == _span_id(first_run)
    assert spans["invoke_workflow wf"].context.trace_id == first_run.context.trace_id


@pytest.mark.asyncio
async def test_canceling_a_suspended_run_records_a_span_of_its_own(
    otel_pm: PluginManager, span_exporter: InMemorySpanExporter
) -> None:
    @step(id="gate")
    async def gate(ctx: StepContext[Any]) -> Any:
        ctx.suspend({"waiting": True})

    run = await Workflow(id="wf").then(gate).commit().create_run(plugin_manager=otel_pm)
    await run.start({})
    span_exporter.clear()
    await run.cancel()
    [span] = span_exporter.get_finished_spans()
    assert span.name == "invoke_workflow wf"
    assert (span.attributes or {})["stepstream.status"] == "canceled"


@pytest.mark.asyncio
async def test_canceled_step_is_an_error(
    otel_pm: PluginManager, span_exporter: InMemorySpanExporter
) -> None:
    started = asyncio.Event()

    @step(id="forever")
    async def forever(ctx: StepContext[Any]) -> Any:
        started.set()
        await asyncio.Event().wait()

    run = await Workflow(id="wf").then(forever).commit().create_run(plugin_manager=otel_pm)
    task = asyncio.create_task(run.start({}))
    await started.wait()
    await run.cancel()
    assert (await task).status == "canceled"
    spans = _by_name(span_exporter)
    assert spans["step forever"].status.status_code is StatusCode.ERROR
    assert spans["step forever"].status.description == "canceled"
    assert (spans["invoke_workflow wf"].attributes or {})["stepstream.status"] == "canceled"
    await assert_no_tasks_left()


@pytest.mark.asyncio
async def test_nested_workflow_steps_are_children_of_its_step(
    otel_pm: PluginManager, span_exporter: InMemorySpanExporter
) -> None:
    inner = Workflow(id="inner-wf", input_schema=Value, output_schema=Value).then(add_one)
    wf = Workflow(id="outer-wf", input_schema=Value).then(add_one).then(inner.commit()).commit()
    assert (await _start(wf, otel_pm, {"value": 1})).result == {"value": 3}
    spans = _by_name(span_exporter)
    run_id = _span_id(spans["invoke_workflow outer-wf"])
    assert _parent_of(spans["step add-one"]) == run_id
    assert _parent_of(spans["step inner-wf"]) == run_id
    assert _parent_of(spans["step inner-wf.add-one"]) == _span_id(spans["step inner-wf"])


@pytest.mark.asyncio
async def test_a_failed_nested_workflow_fails_its_step_span(
    otel_pm: PluginManager, span_exporter: InMemorySpanExporter
) -> None:
    """The nested step's body returns a failed outcome without raising."""
    inner = Workflow(id="inner-wf").then(bad).commit()
    await _start(Workflow(id="outer-wf").then(inner).commit(), otel_pm)
    spans = _by_name(span_exporter)
    for name in ("step inner-wf", "step inner-wf.bad", "invoke_workflow outer-wf"):
        assert spans[name].status.status_code is StatusCode.ERROR, name
        assert spans[name].status.description == "LookupError: nothing here", name
    assert (spans["step inner-wf"].attributes or {})["stepstream.status"] == "failed"


@pytest.mark.asyncio
async def test_the_step_span_is_current_while_the_step_runs(
    otel_pm: PluginManager, provider: TracerProvider, span_exporter: InMemorySpanExporter
) -> None:
    @step(id="calls-out")
    async def calls_out(ctx: StepContext[Any]) -> Any:
        with provider.get_tracer("http-client").start_as_current_span("GET /weather"):
            return {}

    current_between_steps: list[trace.Span] = []

    def seen_between_steps(ctx: StepContext[Any]) -> bool:
        current_between_steps.append(trace.get_current_span())
        return True

    wf = Workflow(id="wf").dountil(calls_out, seen_between_steps).commit()
    await _start(wf, otel_pm)
    spans = _by_name(span_exporter)
    assert _parent_of(spans["GET /weather"]) == _span_id(spans["step calls-out"])
    # The loop's condition runs after the step: its span is no longer current there.
    assert current_between_steps == [trace.INVALID_SPAN]


def make_agent(server: ModelServer) -> Agent:
    return Agent(
        "Weather Agent",
        "Suggest activities.",
        "mock-gpt",
        base_url=server.base_url,
        api_key="test-key",
        retry=RetryPolicy(initial_wait=0, jitter=0),
    )


@pytest.mark.asyncio
async def test_agent_step_counts_text_chunks_without_an_event_per_delta(
    otel_pm: PluginManager, span_exporter: InMemorySpanExporter, model_server: ModelServer
) -> None:
    model_server.responder = lambda body: TextReply(["a ", "b ", "c ", "d ", "e"])
    agent_step = step.from_agent(make_agent(model_server))
    result = await _start(Workflow(id="wf").then(agent_step).commit(), otel_pm, {"prompt": "Hi"})
    assert result.status == "success"
    spans = _by_name(span_exporter)
    step_span = spans["invoke_agent Weather Agent"]
    assert (step_span.attributes or {})["stepstream.text_chunks"] == 5
    assert (spans["invoke_workflow wf"].attributes or {})["stepstream.text_chunks"] == 5
    names = _event_names(step_span)
    assert "tool-call-delta" not in names
    assert names[:2] == ["step-start", "tool-call-streaming-start"]
    [streaming] = [e for e in step_span.events if e.name == "tool-call-streaming-start"]
    assert (streaming.attributes or {})["stepstream.tool_name"] == "Weather Agent"
    for span in spans.values():
        for event in span.events:
            for value in (event.attributes or {}).values():
                assert isinstance(value, str | int | bool)
    await assert_no_tasks_left()


@pytest.mark.asyncio
async def test_deltas_of_parallel_steps_count_for_the_step_that_emits_them(
    otel_pm: PluginManager, provider: TracerProvider, span_exporter: InMemorySpanExporter
) -> None:
    """``left`` emits while ``right`` (started after it) is still open: the innermost open
    step would be the wrong answer."""
    left_may_emit, right_may_end = asyncio.Event(), asyncio.Event()

    async def deltas(ctx: StepContext[Any], count: int) -> None:
        for i in range(count):
            await ctx.emit(
                ToolCallDeltaEvent,
                tool_call_id="t",
                tool_name="t",
                name="t",
                args={},
                args_text_delta=str(i),
            )

    @step(id="left")
    async def left(ctx: StepContext[Any]) -> Any:
        await left_may_emit.wait()
        with provider.get_tracer("http-client").start_as_current_span("POST /chat"):
            await deltas(ctx, 2)  # the current span is the client's, a child of the step's
        right_may_end.set()
        return {}

    @step(id="right")
    async def right(ctx: StepContext[Any]) -> Any:
        await deltas(ctx, 3)
        left_may_emit.set()
        await right_may_end.wait()
        return {}

    await _start(Workflow(id="wf").parallel([left, right]).commit(), otel_pm)
    spans = _by_name(span_exporter)
    assert (spans["step left"].attributes or {})["stepstream.text_chunks"] == 2
    assert (spans["step right"].attributes or {})["stepstream.text_chunks"] == 3
    assert (spans["invoke_workflow wf"].attributes or {})["stepstream.text_chunks"] == 5
