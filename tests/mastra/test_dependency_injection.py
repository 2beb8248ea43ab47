"""Mastra's ``describe('Dependency Injection')`` (workflow.test.ts line 7673): the runtime
context across start and resume."""

from __future__ import annotations

from typing import Any

import pytest

from stepstream import PluginManager, RuntimeContext, Step, StepContext, Workflow

TEST_VALUE = "test-dependency"


@pytest.mark.asyncio
async def test_should_inject_runtime_context_dependencies_into_steps_during_run(
    pm: PluginManager,
) -> None:
    """workflow.test.ts line 7674."""
    step1 = Step(
        id="step1", execute=lambda ctx: {"injectedValue": ctx.runtime_context.get("testKey")}
    )
    wf = Workflow(id="test-workflow").then(step1).commit()
    result = await (await wf.create_run(plugin_manager=pm)).start(
        {}, RuntimeContext({"testKey": TEST_VALUE})
    )
    assert result.to_wire()["steps"]["step1"]["output"]["injectedValue"] == TEST_VALUE


@pytest.mark.asyncio
async def test_should_inject_runtime_context_dependencies_into_steps_during_resume(
    pm: PluginManager,
) -> None:
    """workflow.test.ts line 7698."""

    async def execute(ctx: StepContext[Any]) -> Any:
        if not (ctx.resume_data or {}).get("human"):
            await ctx.suspend()
        return {"injectedValue": ctx.runtime_context.get("testKey")}

    step1 = Step(id="step1", execute=execute)
    run = await Workflow(id="test-workflow").then(step1).commit().create_run(plugin_manager=pm)
    await run.start({}, RuntimeContext({"testKey": TEST_VALUE}))
    result = await run.resume(
        step=step1,
        resume_data={"human": True},
        runtime_context=RuntimeContext({"testKey": TEST_VALUE + "2"}),
    )
    assert result.to_wire()["steps"]["step1"]["output"]["injectedValue"] == TEST_VALUE + "2"


def _increment_workflow(final_sees: list[Any], delete_in_resume: bool) -> Workflow:
    def increment(ctx: StepContext[Any]) -> Any:
        ctx.runtime_context.set("testKey", TEST_VALUE)
        return {"value": ctx.input_data["value"] + 1}

    def resume_step(ctx: StepContext[Any]) -> Any:
        final = ((ctx.resume_data or {}).get("value") or 0) + ctx.input_data["value"]
        if not (ctx.resume_data or {}).get("value") or final < 10:
            ctx.suspend({"message": f"now value is {ctx.input_data['value']}"})
        if delete_in_resume:
            final_sees.append(("resume", ctx.runtime_context.get("testKey")))
            ctx.runtime_context.delete("testKey")
        return {"value": final}

    def final(ctx: StepContext[Any]) -> Any:
        final_sees.append(("final", ctx.runtime_context.get("testKey")))
        return {"value": ctx.input_data["value"]}

    return (
        Workflow(id="increment-workflow")
        .then(Step(id="increment", execute=increment))
        .then(Step(id="resume", execute=resume_step))
        .then(Step(id="final", execute=final))
        .commit()
    )


@pytest.mark.asyncio
async def test_should_have_access_to_runtime_context_from_before_suspension_during_workflow_resume(
    pm: PluginManager,
) -> None:
    """workflow.test.ts line 7751."""
    seen: list[Any] = []
    run = await _increment_workflow(seen, delete_in_resume=False).create_run(plugin_manager=pm)
    assert (await run.start({"value": 0})).status == "suspended"
    assert (await run.resume(step=["resume"], resume_data={"value": 21})).status == "success"
    assert seen == [("final", TEST_VALUE)]


@pytest.mark.asyncio
async def test_should_not_show_removed_runtime_context_values_in_subsequent_steps(
    pm: PluginManager,
) -> None:
    """workflow.test.ts line 7827."""
    seen: list[Any] = []
    run = await _increment_workflow(seen, delete_in_resume=True).create_run(plugin_manager=pm)
    assert (await run.start({"value": 0})).status == "suspended"
    assert (await run.resume(step=["resume"], resume_data={"value": 21})).status == "success"
    assert seen == [("resume", TEST_VALUE), ("final", None)]
