"""Errors that say where: a raising branch or loop condition names its branch and step, a
raising map function names its map step; Mastra's own error texts come first where Mastra
raises (so users searching for them find them)."""

from __future__ import annotations

from typing import Any

import pytest

from stepstream import (
    PluginManager,
    RunStateError,
    Step,
    StepContext,
    Workflow,
    WorkflowDefinitionError,
)


def _boom(ctx: StepContext[Any]) -> bool:
    return 1 / 0 > 0


def _inc() -> Step[Any, Any]:
    return Step(id="inc", execute=lambda ctx: {"n": ctx.input_data["n"] + 1})


async def _failed(pm: PluginManager, wf: Workflow) -> str:
    result = await (await wf.commit().create_run(plugin_manager=pm)).start({"n": 1})
    assert result.status == "failed"
    assert result.error is not None
    return result.error


@pytest.mark.asyncio
async def test_a_raising_branch_condition_names_its_branch_and_step(pm: PluginManager) -> None:
    wf = Workflow(id="wf").branch(
        [
            (lambda ctx: False, Step(id="a", execute=lambda ctx: 1)),
            (_boom, Step(id="b", execute=lambda ctx: 2)),
        ]
    )
    assert await _failed(pm, wf) == (
        "StepExecutionError: the condition of branch 1 (step 'b') raised "
        "ZeroDivisionError: division by zero"
    )


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["dowhile", "dountil"])
async def test_a_raising_loop_condition_names_the_loop_and_its_step(
    kind: str, pm: PluginManager
) -> None:
    wf = getattr(Workflow(id="wf"), kind)(_inc(), _boom)
    assert await _failed(pm, wf) == (
        f"StepExecutionError: the {kind} condition of step 'inc' raised "
        "ZeroDivisionError: division by zero"
    )


@pytest.mark.asyncio
async def test_a_raising_map_function_names_the_map_step(pm: PluginManager) -> None:
    wf = Workflow(id="wf").then(_inc()).map(lambda ctx: ctx.input_data["missing"])
    error = await _failed(pm, wf)
    assert error.startswith("StepExecutionError: map step 'mapping_")
    assert error.endswith("' raised KeyError: 'missing'")
    spec = Workflow(id="wf").then(_inc()).map({"x": {"step": "inc", "path": "nope"}})
    assert "map step 'mapping_" in await _failed(pm, spec)


def test_mastras_definition_error_texts_come_first() -> None:
    with pytest.raises(
        WorkflowDefinitionError, match=r"^Execution flow of workflow is not defined"
    ):
        Workflow(id="wf").commit()
    with pytest.raises(WorkflowDefinitionError, match=r"^Uncommitted step flow changes detected"):
        Workflow(id="wf").then(_inc()).create_run_sync()


@pytest.mark.asyncio
async def test_mastras_resume_error_texts_come_first(pm: PluginManager) -> None:
    async def ask(ctx: StepContext[Any]) -> Any:
        if ctx.resume_data is None:
            ctx.suspend({"ask": True})
        return ctx.resume_data

    run = (
        await Workflow(id="wf")
        .then(_inc())
        .then(Step(id="ask", execute=ask))
        .commit()
        .create_run(plugin_manager=pm)
    )
    with pytest.raises(RunStateError, match=r"^This workflow run was not suspended: run "):
        await run.resume(resume_data=1)  # not started
    assert (await run.start({"n": 1})).status == "suspended"
    with pytest.raises(RunStateError, match=r"^This workflow step was not suspended: run "):
        await run.resume(step="inc", resume_data=1)


def test_a_map_spec_reading_a_step_not_in_the_workflow_is_refused_at_commit() -> None:
    stranger = Step(id="stranger", execute=lambda ctx: {})
    wf = Workflow(id="wf").then(_inc()).map({"x": {"step": [stranger, "inc"], "path": "n"}})
    with pytest.raises(WorkflowDefinitionError, match=r"map step 'mapping_.*' reads 'x' from"):
        wf.commit()
    assert not wf.committed
    ok = Workflow(id="wf").then(_inc()).map({"x": {"step": "inc", "path": "n"}}).commit()
    assert ok.committed
