"""``clone_step`` and ``clone_workflow`` (Mastra's ``cloneStep`` / ``cloneWorkflow``)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from stepstream import (
    PluginManager,
    Step,
    StepContext,
    Workflow,
    WorkflowDefinitionError,
    clone_step,
    clone_workflow,
)


class Number(BaseModel):
    value: int


def _double(ctx: StepContext[Any]) -> Any:
    return {"value": ctx.input_data.value * 2}


@pytest.mark.asyncio
async def test_a_cloned_step_runs_beside_its_original(pm: PluginManager) -> None:
    double = Step(
        id="double", execute=_double, input_schema=Number, output_schema=Number, retries=2
    )
    again = clone_step(double, id="double-again")
    assert (again.id, double.id) == ("double-again", "double")
    assert (again.input_schema, again.output_schema, again.retries) == (Number, Number, 2)
    wf = Workflow(id="wf").then(double).then(again).commit()
    result = await (await wf.create_run(plugin_manager=pm)).start({"value": 3})
    assert result.result == {"value": 12}
    assert set(result.steps) == {"double", "double-again"}


@pytest.mark.asyncio
async def test_a_cloned_workflow_is_committed_and_keeps_its_own_graph_and_runs(
    pm: PluginManager,
) -> None:
    source = Workflow(id="source").then(Step(id="a", execute=lambda ctx: {"n": 1}))
    clone = clone_workflow(source, id="clone")
    assert clone.committed and not source.committed
    source.then(Step(id="b", execute=lambda ctx: {"n": 2})).commit()
    assert [n.step.id for n in clone.nodes] == ["a"]  # type: ignore[union-attr]
    run = await clone.create_run("run-1", plugin_manager=pm)
    assert (await source.create_run("run-1", plugin_manager=pm)) is not run
    assert await clone.create_run("run-1") is run
    assert (await run.start({})).result == {"n": 1}
    outer = Workflow(id="outer").parallel([source, clone]).commit()
    both = await (await outer.create_run(plugin_manager=pm)).start({})
    assert both.result == {"source": {"n": 2}, "clone": {"n": 1}}


@pytest.mark.parametrize(
    ("clone", "message"),
    [
        (lambda: clone_step("double", id="x"), "clone_step\\(\\) takes a Step"),  # type: ignore[arg-type]
        (lambda: clone_step(Step(id="s", execute=_double), id=""), "non-empty string"),
        (
            lambda: clone_workflow(Step(id="s", execute=_double), id="x"),  # type: ignore[arg-type]
            "clone_workflow\\(\\) takes a Workflow",
        ),
        (lambda: clone_workflow(Workflow(id="wf"), id=3), "non-empty string"),  # type: ignore[arg-type]
        (lambda: clone_workflow(Workflow(id="wf"), id="x"), "Execution flow of workflow"),
    ],
    ids=["not a step", "empty id", "not a workflow", "id not a string", "no steps"],
)
def test_a_bad_clone_is_refused_clearly(clone: Any, message: str) -> None:
    with pytest.raises(WorkflowDefinitionError, match=message):
        clone()
