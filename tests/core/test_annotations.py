"""Schemas from any annotation: every type pydantic can validate is validated (a model, or a
``RootModel`` of the type), and one it cannot is refused when the step is defined."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from stepstream import PluginManager, StepContext, Workflow, WorkflowDefinitionError, step


class Point(BaseModel):
    x: int


async def _run(pm: PluginManager, wf: Workflow, input_data: Any) -> Any:
    return await (await wf.commit().create_run(plugin_manager=pm)).start(input_data)


@pytest.mark.asyncio
async def test_a_step_annotated_int_that_returns_a_string_fails(pm: PluginManager) -> None:
    @step(id="count")
    async def count(ctx: StepContext[Any]) -> int:
        return ctx.input_data["n"]  # type: ignore[no-any-return]

    good = await _run(pm, Workflow(id="wf").then(count), {"n": 3})
    assert good.status == "success" and good.result == 3
    bad = await _run(pm, Workflow(id="wf").then(count), {"n": "many"})
    assert bad.status == "failed"
    assert bad.error.startswith("OutputValidationError: step 'count' returned output that does not")
    assert "Input should be a valid integer" in bad.error


@pytest.mark.asyncio
async def test_dict_and_list_of_model_annotations_are_validated_and_typed(
    pm: PluginManager,
) -> None:
    seen: list[Any] = []

    @step(id="scores")
    async def scores(ctx: StepContext[dict[str, float]]) -> list[Point]:
        return [Point(x=int(v)) for v in ctx.input_data.values()]

    @step(id="total")
    async def total(ctx: StepContext[list[Point]]) -> dict[str, float]:
        seen.append(ctx.input_data)
        return {"total": sum(p.x for p in ctx.input_data)}

    wf = Workflow(id="wf").then(scores).then(total)
    result = await _run(pm, wf, {"a": 1.5, "b": "2"})
    assert result.status == "success"
    assert result.to_wire()["steps"]["scores"]["output"] == [{"x": 1}, {"x": 2}]
    assert seen == [[Point(x=1), Point(x=2)]]  # the next step gets models, not dicts
    assert result.result == {"total": 3.0}
    bad = await _run(pm, Workflow(id="wf").then(scores), {"a": "lots"})
    assert bad.status == "failed"
    assert bad.error.startswith("InputValidationError: step 'scores' input does not match")


def test_an_annotation_pydantic_cannot_validate_is_refused_at_definition() -> None:
    class Opaque:
        pass

    with pytest.raises(WorkflowDefinitionError, match="pydantic cannot validate the annotation"):

        @step(id="opaque")
        async def opaque(ctx: StepContext[Any]) -> Opaque:
            return Opaque()


def test_any_and_unannotated_steps_have_no_schema() -> None:
    @step(id="free")
    async def free(ctx: StepContext[Any]) -> Any:
        return ctx.input_data

    assert free.input_schema is None and free.output_schema is None
