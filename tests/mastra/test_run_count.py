"""Mastra's ``describe('Run count')`` (workflow.test.ts line 8062): ``ctx.run_count``."""

from __future__ import annotations

from typing import Any

import pytest

from stepstream import PluginManager, Step, Workflow


def _counting(step_id: str) -> Step[Any, Any]:
    return Step(id=step_id, execute=lambda ctx: {"count": ctx.run_count})


@pytest.mark.asyncio
async def test_run_count_property_should_increment_when_a_step_is_executed_multiple_times(
    pm: PluginManager,
) -> None:
    """workflow.test.ts line 8063 ('runCount property should increment the run count when a
    step is executed multiple times')."""
    wf = (
        Workflow(id="test-workflow")
        .dountil(_counting("repeatingStep"), lambda ctx: ctx.input_data["count"] == 3)
        .commit()
    )
    result = await (await wf.create_run(plugin_manager=pm)).start({})
    assert result.status == "success"
    assert result.to_wire()["steps"]["repeatingStep"]["output"] == {"count": 3}


@pytest.mark.asyncio
async def test_multiple_steps_should_have_different_run_counts(pm: PluginManager) -> None:
    """workflow.test.ts line 8089."""
    wf = (
        Workflow(id="test-workflow")
        .dowhile(_counting("step1"), lambda ctx: ctx.input_data["count"] < 3)
        .dountil(_counting("step2"), lambda ctx: ctx.input_data["count"] == 10)
        .commit()
    )
    result = await (await wf.create_run(plugin_manager=pm)).start({})
    assert result.status == "success"
    wire = result.to_wire()["steps"]
    assert wire["step1"]["output"] == {"count": 3}
    assert wire["step2"]["output"] == {"count": 10}


@pytest.mark.asyncio
async def test_run_count_should_exist_and_equal_zero_for_the_first_run(pm: PluginManager) -> None:
    """workflow.test.ts line 8128."""
    seen: list[int] = []

    def execute(ctx: Any) -> Any:
        seen.append(ctx.run_count)
        return {"count": ctx.run_count}

    wf = Workflow(id="test-workflow").then(Step(id="step", execute=execute)).commit()
    await (await wf.create_run(plugin_manager=pm)).start({})
    assert seen == [0]
