"""Resuming through a loop: as Mastra's engine does, the resumption reaches every later
iteration of the loop's step in that execution (its test for bug 5650), and only those."""

from __future__ import annotations

from typing import Any

import pytest

from stepstream import PluginManager, Step, StepContext, Workflow


@pytest.mark.asyncio
async def test_each_later_iteration_of_a_resumed_loop_step_gets_the_resume_data(
    pm: PluginManager,
) -> None:
    seen: list[tuple[int, Any]] = []

    def add(ctx: StepContext[Any]) -> Any:
        seen.append((ctx.input_data["value"], ctx.resume_data))
        if ctx.resume_data is None:
            ctx.suspend({"ask": "how much?"})
        return {"value": ctx.input_data["value"] + ctx.resume_data["by"]}

    wf = (
        Workflow(id="wf")
        .dountil(Step(id="add", execute=add), lambda ctx: ctx.input_data["value"] >= 6)
        .then(Step(id="after", execute=lambda ctx: {"resumed": ctx.resume_data}))
        .commit()
    )
    run = await wf.create_run(plugin_manager=pm)
    assert (await run.start({"value": 0})).status == "suspended"
    done = await run.resume(step="add", resume_data={"by": 2})
    assert done.status == "success"
    assert seen == [(0, None), (0, {"by": 2}), (2, {"by": 2}), (4, {"by": 2})]
    assert done.steps["add"].output == {"value": 6}
    assert done.steps["add"].resume_payload == {"by": 2}
    assert done.result == {"resumed": None}  # the step after the loop is not resumed


@pytest.mark.asyncio
async def test_a_loop_the_resumption_does_not_go_through_gets_no_resume_data(
    pm: PluginManager,
) -> None:
    seen: list[Any] = []

    def ask(ctx: StepContext[Any]) -> Any:
        if ctx.resume_data is None:
            ctx.suspend({})
        return {"value": 0}

    def count(ctx: StepContext[Any]) -> Any:
        seen.append(ctx.resume_data)
        return {"value": ctx.input_data["value"] + 1}

    wf = (
        Workflow(id="wf")
        .then(Step(id="ask", execute=ask))
        .dountil(Step(id="count", execute=count), lambda ctx: ctx.input_data["value"] >= 3)
        .commit()
    )
    run = await wf.create_run(plugin_manager=pm)
    assert (await run.start({})).status == "suspended"
    assert (await run.resume(step="ask", resume_data={"go": True})).result == {"value": 3}
    assert seen == [None, None, None]


@pytest.mark.asyncio
async def test_a_loop_inside_a_looped_workflow_hands_the_resumption_on_at_both_levels(
    pm: PluginManager,
) -> None:
    inputs: list[tuple[int, Any]] = []

    def step_up(ctx: StepContext[Any]) -> Any:
        inputs.append((ctx.input_data["value"], ctx.resume_data))
        if ctx.resume_data is None:
            ctx.suspend({})
        return {"value": ctx.input_data["value"] + ctx.resume_data["by"]}

    inner = (
        Workflow(id="inner")
        .dountil(Step(id="up", execute=step_up), lambda ctx: ctx.input_data["value"] % 4 == 0)
        .commit()
    )
    wf = Workflow(id="outer").dountil(inner, lambda ctx: ctx.input_data["value"] >= 8).commit()
    run = await wf.create_run(plugin_manager=pm)
    assert (await run.start({"value": 0})).status == "suspended"
    done = await run.resume(step=["inner", "up"], resume_data={"by": 2})
    assert done.status == "success" and done.result == {"value": 8}
    assert inputs == [(0, None), (0, {"by": 2}), (2, {"by": 2}), (4, {"by": 2}), (6, {"by": 2})]
