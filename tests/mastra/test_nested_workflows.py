"""Mastra's ``describe('Nested workflows')`` (workflow.test.ts line 6457), its nested
``describe``s apart (``test_new_if_else_branching_syntax_with_nested_workflows``,
``test_suspending_and_resuming_nested_workflows``, ``test_workflow_results``)."""

from __future__ import annotations

from typing import Any

import pytest

from stepstream import PluginManager, Step, StepContext, Workflow, clone_step, clone_workflow

from .expect import ok, steps
from .nested import CounterSteps


def _nested_pair(s: CounterSteps, b_branches: bool = False) -> tuple[Workflow, Workflow]:
    wf_a = Workflow(id="nested-workflow-a").then(s.start).then(s.other).then(s.final).commit()
    wf_b = Workflow(id="nested-workflow-b").then(s.start)
    if b_branches:
        wf_b.branch([(lambda ctx: False, s.other), (lambda ctx: True, s.final)])
        wf_b.map({"finalValue": {"step": s.final, "path": "finalValue"}})
    else:
        wf_b.then(s.final)
    return wf_a, wf_b.commit()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("line", "b_branches"),
    [(6458, False), (6696, True)],
    ids=["should be able to nest workflows", "should be able to nest workflows with conditions"],
)
async def test_should_be_able_to_nest_workflows(
    line: int, b_branches: bool, pm: PluginManager
) -> None:
    """workflow.test.ts line 6458 ('should be able to nest workflows') and line 6696 ('should
    be able to nest workflows with conditions', where workflow b branches)."""
    s = CounterSteps()
    wf_a, wf_b = _nested_pair(s, b_branches)
    wf = (
        Workflow(id="counter-workflow")
        .parallel([wf_a, wf_b])
        .then(s.counted("last-step", {"success": True}))
        .commit()
    )
    result = await (await wf.create_run(plugin_manager=pm)).start({"startValue": 0})
    assert s.calls == {"start": 2, "other": 1, "final": 2, "last-step": 1}
    wire = steps(result)
    assert wire["nested-workflow-a"]["output"] == {"finalValue": 26 + 1}
    assert wire["nested-workflow-b"]["output"] == {"finalValue": 1}
    assert wire["last-step"] == ok(
        {"nested-workflow-a": {"finalValue": 27}, "nested-workflow-b": {"finalValue": 1}},
        {"success": True},
    )


@pytest.mark.asyncio
async def test_should_be_able_clone_workflows_as_steps(pm: PluginManager) -> None:
    """workflow.test.ts line 6575."""
    s = CounterSteps()

    def final(ctx: StepContext[Any]) -> Any:  # reads the clone's result, as Mastra's does
        s.calls["final"] += 1
        start = (ctx.get_step_result(s.start) or {}).get("newValue", 0)
        other = (ctx.get_step_result(clone_step(s.other, id="other-clone")) or {}).get("other", 0)
        return {"finalValue": start + other}

    final_step = Step(id="final", execute=final)
    wf_a = (
        Workflow(id="nested-workflow-a")
        .then(s.start)
        .then(clone_step(s.other, id="other-clone"))
        .then(final_step)
        .commit()
    )
    wf_b = (
        Workflow(id="nested-workflow-b")
        .then(s.start)
        .then(clone_step(final_step, id="final-clone"))
        .commit()
    )
    wf_a_clone = clone_workflow(wf_a, id="nested-workflow-a-clone")
    wf = (
        Workflow(id="counter-workflow")
        .parallel([wf_a_clone, wf_b])
        .then(s.counted("last-step", {"success": True}))
        .commit()
    )
    result = await (await wf.create_run(plugin_manager=pm)).start({"startValue": 0})
    assert s.calls == {"start": 2, "other": 1, "final": 2, "last-step": 1}
    wire = steps(result)
    assert wire["nested-workflow-a-clone"]["output"] == {"finalValue": 26 + 1}
    assert wire["nested-workflow-b"]["output"] == {"finalValue": 1}
    assert wire["last-step"] == ok(
        {"nested-workflow-a-clone": {"finalValue": 27}, "nested-workflow-b": {"finalValue": 1}},
        {"success": True},
    )
    assert wf_a.id == "nested-workflow-a" and "nested-workflow-a" not in wire
