"""Mastra's ``describe('new if else branching syntax with nested workflows')``
(workflow.test.ts line 6823)."""

from __future__ import annotations

from typing import Any

import pytest

from stepstream import PluginManager, Step, Workflow, WorkflowResult

from .expect import ok, steps
from .nested import CounterSteps


async def _branching(
    pm: PluginManager, s: CounterSteps, wf_b: Workflow, take_a: bool, start_value: int
) -> WorkflowResult:
    wf_a = Workflow(id="nested-workflow-a").then(s.start).then(s.other).then(s.final).commit()
    wf = (
        Workflow(id="counter-workflow")
        .then(s.counted("first-step", {"success": True}))
        .branch([(lambda ctx: take_a, wf_a), (lambda ctx: not take_a, wf_b)])
        .then(s.counted("last-step", {"success": True}))
        .commit()
    )
    result = await (await wf.create_run(plugin_manager=pm)).start({"startValue": start_value})
    assert steps(result)["first-step"] == ok({"startValue": start_value}, {"success": True})
    return result


@pytest.mark.asyncio
async def test_should_execute_if_branch(pm: PluginManager) -> None:
    """workflow.test.ts line 6824."""
    s = CounterSteps()
    wf_b = Workflow(id="nested-workflow-b").then(s.start).then(s.final).commit()
    result = await _branching(pm, s, wf_b, take_a=True, start_value=0)
    assert s.calls == {"start": 1, "other": 1, "final": 1, "first-step": 1, "last-step": 1}
    assert steps(result)["nested-workflow-a"]["output"] == {"finalValue": 26 + 1}
    assert steps(result)["last-step"] == ok(
        {"nested-workflow-a": {"finalValue": 27}}, {"success": True}
    )


@pytest.mark.asyncio
async def test_should_execute_else_branch(pm: PluginManager) -> None:
    """workflow.test.ts line 6959."""
    s = CounterSteps()
    wf_b = Workflow(id="nested-workflow-b").then(s.start).then(s.final).commit()
    result = await _branching(pm, s, wf_b, take_a=False, start_value=0)
    assert s.calls == {"start": 1, "final": 1, "first-step": 1, "last-step": 1}
    assert steps(result)["nested-workflow-b"]["output"] == {"finalValue": 1}
    assert steps(result)["last-step"] == ok(
        {"nested-workflow-b": {"finalValue": 1}}, {"success": True}
    )


@pytest.mark.asyncio
async def test_should_execute_nested_else_and_if_branch(pm: PluginManager) -> None:
    """workflow.test.ts line 7095 (``other`` runs two workflows down: ``final`` does not see
    it, so its value is 1)."""
    s = CounterSteps()

    def map_results(ctx: Any) -> Any:
        found = ctx.input_data.get("nested-workflow-c") or ctx.input_data.get("nested-workflow-d")
        return {"other": found["other"]}

    wf_b = (
        Workflow(id="nested-workflow-b")
        .then(s.start)
        .branch(
            [
                (lambda ctx: True, Workflow(id="nested-workflow-c").then(s.other).commit()),
                (lambda ctx: False, Workflow(id="nested-workflow-d").then(s.other).commit()),
            ]
        )
        .then(Step(id="map-results", execute=map_results))
        .then(s.final)
        .commit()
    )
    result = await _branching(pm, s, wf_b, take_a=False, start_value=1)
    assert s.calls == {"start": 1, "other": 1, "final": 1, "first-step": 1, "last-step": 1}
    assert steps(result)["nested-workflow-b"]["output"] == {"finalValue": 1}
    assert steps(result)["last-step"] == ok(
        {"nested-workflow-b": {"finalValue": 1}}, {"success": True}
    )
