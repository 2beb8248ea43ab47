"""Mastra's ``describe('suspending and resuming nested workflows')`` (workflow.test.ts line
7269), and the test of the same subject one level up (line 7509)."""

from __future__ import annotations

from typing import Any

import pytest

from stepstream import PluginManager, Step, Workflow

from .expect import steps
from .nested import CounterSteps


@pytest.mark.asyncio
async def test_should_be_able_to_suspend_nested_workflow_step(pm: PluginManager) -> None:
    """workflow.test.ts line 7270 (resumed by a path of a workflow and a step object)."""
    s = CounterSteps(other_suspends=True)
    wf_a = Workflow(id="nested-workflow-a").then(s.start).then(s.other).then(s.final).commit()
    wf = (
        Workflow(id="counter-workflow")
        .then(Step(id="begin-step", execute=lambda ctx: ctx.input_data))
        .then(wf_a)
        .then(s.counted("last-step", {"success": True}))
        .commit()
    )
    run = await wf.create_run(plugin_manager=pm)
    result = await run.start({"startValue": 0})
    assert s.calls == {"start": 1, "other": 1}
    assert steps(result)["nested-workflow-a"]["status"] == "suspended"
    assert "last-step" not in steps(result)
    resumed = await run.resume(step=[wf_a, s.other], resume_data={"newValue": 0})
    assert steps(resumed)["nested-workflow-a"]["output"] == {"finalValue": 26 + 1}
    assert s.calls == {"start": 1, "other": 2, "final": 1, "last-step": 1}


@pytest.mark.asyncio
async def test_should_be_able_to_suspend_nested_workflow_step_in_a_nested_workflow_step(
    pm: PluginManager,
) -> None:
    """workflow.test.ts line 7509 (the suspend payload says where, in ``__workflow_meta``)."""
    s = CounterSteps(other_suspends=True)

    def through(ctx: Any) -> Any:
        s.calls["passthrough"] += 1
        return ctx.input_data

    passthrough = Step(id="passthrough", execute=through)
    wf_a = Workflow(id="nested-workflow-a").then(s.start).then(s.other).then(s.final).commit()
    wf_b = Workflow(id="nested-workflow-b").then(passthrough).then(wf_a).commit()
    wf_c = Workflow(id="nested-workflow-c").then(passthrough).then(wf_b).commit()
    wf = (
        Workflow(id="counter-workflow")
        .then(Step(id="begin-step", execute=lambda ctx: ctx.input_data))
        .then(wf_c)
        .then(s.counted("last-step", {"success": True}))
        .commit()
    )
    run = await wf.create_run(plugin_manager=pm)
    result = await run.start({"startValue": 0})
    assert s.calls["passthrough"] == 2
    record = steps(result)["nested-workflow-c"]
    assert record["status"] == "suspended"
    assert record["suspendPayload"]["__workflow_meta"]["path"] == [
        "nested-workflow-b",
        "nested-workflow-a",
        "other",
    ]
    assert "last-step" not in steps(result)
    assert result.status == "suspended"
    assert result.suspended[0] == [
        "nested-workflow-c",
        "nested-workflow-b",
        "nested-workflow-a",
        "other",
    ]
    resumed = await run.resume(step=result.suspended[0], resume_data={"newValue": 0})
    assert steps(resumed)["nested-workflow-c"]["output"] == {"finalValue": 26 + 1}
    assert s.calls == {"start": 1, "other": 2, "final": 1, "last-step": 1, "passthrough": 2}
