"""WorkflowTestRunner: events, counts by type, result and state in one report."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from stepstream import StepContext, Workflow, step
from stepstream.testing import Recorder, WorkflowTestRunner


class Value(BaseModel):
    value: int


@step(id="double")
def double(ctx: StepContext[Value]) -> Value:
    return Value(value=ctx.input_data.value * 2)


@step(id="add-one")
def add_one(ctx: StepContext[Value]) -> Value:
    return Value(value=ctx.input_data.value + 1)


@step(id="approve")
async def approve(ctx: StepContext[Value]) -> Value:
    if ctx.resume_data is None:
        await ctx.suspend({"asking": ctx.input_data.value})
    return ctx.input_data


@step(id="boom")
def boom(ctx: StepContext[Value]) -> Value:
    raise ValueError("no")


def test_a_run_reports_events_counts_result_and_state() -> None:
    wf = Workflow(id="twice", input_schema=Value).then(double).then(add_one).commit()
    report = WorkflowTestRunner(wf).run_sync({"value": 3})
    assert report.status == "success"
    assert report.result == {"value": 7}
    assert report.state.steps["double"].status == "success"
    assert report.types()[0] == "start" and report.types()[-1] == "finish"
    assert report.counts["step-start"] == 2 and report.counts["step-result"] == 2
    assert report.counts["tool-call-delta"] == 0
    assert report.wire()[0] == {"type": "start", "payload": {"runId": report.run.run_id}}


@pytest.mark.asyncio
async def test_a_suspending_run_returns_and_can_be_resumed() -> None:
    wf = Workflow(id="gate", input_schema=Value).then(approve).then(double).commit()
    report = await WorkflowTestRunner(wf).run({"value": 5})
    assert report.status == "suspended"
    assert report.counts["step-suspended"] == 1 and report.counts["finish"] == 0
    resumed = await report.run.resume(step="approve", resume_data={"ok": True})
    assert resumed.status == "success" and resumed.result == {"value": 10}


def test_a_failing_run_is_reported_not_raised() -> None:
    wf = Workflow(id="fails", input_schema=Value).then(boom).commit()
    report = WorkflowTestRunner(wf).run_sync({"value": 1})
    assert report.status == "failed"
    assert report.result is None
    assert "ValueError: no" in str(report.state.error)


def test_plugins_are_registered_on_each_fresh_manager() -> None:
    recorder = Recorder()
    wf = Workflow(id="one", input_schema=Value).then(double).commit()
    runner = WorkflowTestRunner(wf, plugins=[("recorder", recorder)])
    first, second = runner.run_sync({"value": 1}), runner.run_sync({"value": 2})
    assert recorder.types() == first.types() + second.types()
    assert [c[0] for c in recorder.calls][:2] == ["before_workflow_run", "before_step_run"]
