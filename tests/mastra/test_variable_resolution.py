"""Mastra's ``describe('Variable Resolution')`` (workflow.test.ts line 1347): step inputs,
``getStepResult``, ``getInitData`` and ``.map()`` sources."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from stepstream import PluginManager, RuntimeContext, Step, StepContext, Workflow

from .expect import ok, steps


class Cool(BaseModel):
    cool: str


def _recording(step_id: str, value: Any, seen: list[Any]) -> Step[Any, Any]:
    def execute(ctx: StepContext[Any]) -> Any:
        seen.append(ctx.input_data)
        return value

    return Step(id=step_id, execute=execute)


async def _start(pm: PluginManager, wf: Workflow, input_data: Any, **kw: Any) -> Any:
    return await (await wf.commit().create_run(plugin_manager=pm)).start(input_data, **kw)


@pytest.mark.asyncio
async def test_should_resolve_trigger_data(pm: PluginManager) -> None:
    """workflow.test.ts line 1348."""
    seen: list[Any] = []
    wf = (
        Workflow(id="test-workflow")
        .then(_recording("step1", {"result": "success"}, seen))
        .then(_recording("step2", {"result": "success"}, seen))
    )
    result = await _start(pm, wf, {"inputData": "test-input"})
    assert steps(result)["step1"] == ok({"inputData": "test-input"}, {"result": "success"})
    assert steps(result)["step2"] == ok({"result": "success"}, {"result": "success"})


@pytest.mark.asyncio
async def test_should_provide_access_to_step_results_and_trigger_data_via_get_step_result_helper(
    pm: PluginManager,
) -> None:
    """workflow.test.ts line 1395."""
    seen: list[Any] = []
    step1 = _recording("step1", {"value": "step1-result"}, seen)
    never = Step(id="non-executed-step", execute=lambda ctx: {})

    def second(ctx: StepContext[Any]) -> Any:
        seen.append((ctx.get_step_result(step1), ctx.get_step_result(never)))
        return {"value": "step2-result"}

    wf = Workflow(id="test-workflow").then(step1).then(Step(id="step2", execute=second))
    result = await _start(pm, wf, {"inputValue": "test-input"})
    assert seen == [{"inputValue": "test-input"}, ({"value": "step1-result"}, None)]
    assert steps(result) == {
        "input": {"inputValue": "test-input"},
        "step1": ok({"inputValue": "test-input"}, {"value": "step1-result"}),
        "step2": ok({"value": "step1-result"}, {"value": "step2-result"}),
    }


@pytest.mark.asyncio
async def test_should_resolve_trigger_data_from_context(pm: PluginManager) -> None:
    """workflow.test.ts line 1471."""

    class Trigger(BaseModel):
        inputData: str

    seen: list[Any] = []

    def execute(ctx: StepContext[Trigger]) -> Any:
        seen.append(ctx.input_data)
        return {"result": "success"}

    step1 = Step(id="step1", execute=execute, input_schema=Trigger)
    await _start(
        pm,
        Workflow(id="test-workflow", input_schema=Trigger).then(step1),
        {"inputData": "test-input"},
    )
    assert seen == [Trigger(inputData="test-input")]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "line", [1502, 1555], ids=["getInitData", "getInitData with workflow schema"]
)
async def test_should_resolve_trigger_data_from_get_init_data(line: int, pm: PluginManager) -> None:
    """workflow.test.ts line 1502 ('should resolve trigger data from getInitData') and line
    1555 ('... with workflow schema'): in Python both read the workflow's typed input."""
    seen: list[Any] = []

    def second(ctx: StepContext[Any]) -> Any:
        return {"result": ctx.get_init_data()}

    wf = (
        Workflow(id="test-workflow", input_schema=Cool)
        .then(_recording("step1", {"result": "success"}, seen))
        .then(Step(id="step2", execute=second))
    )
    result = await _start(pm, wf, {"cool": "test-input"})
    assert seen == [{"cool": "test-input"}]
    assert steps(result)["step2"] == ok({"result": "success"}, {"result": {"cool": "test-input"}})


@pytest.mark.asyncio
async def test_should_resolve_trigger_data_and_di_runtime_context_values_via_map(
    pm: PluginManager,
) -> None:
    """workflow.test.ts line 1605."""
    wf = Workflow(id="test-workflow", input_schema=Cool)
    wf.then(Step(id="step1", execute=lambda ctx: {"result": "success"}))
    wf.map({"test": {"init_data": wf, "path": "cool"}, "test2": {"runtime_context": "life"}})
    wf.then(
        Step(
            id="step2",
            execute=lambda ctx: {
                "result": ctx.input_data["test"],
                "second": ctx.input_data["test2"],
            },
        )
    )
    result = await _start(
        pm, wf, {"cool": "test-input"}, runtime_context=RuntimeContext({"life": 42})
    )
    assert steps(result)["step2"] == ok(
        {"test": "test-input", "test2": 42}, {"result": "test-input", "second": 42}
    )


@pytest.mark.asyncio
async def test_should_resolve_dynamic_mappings_via_map(pm: PluginManager) -> None:
    """workflow.test.ts line 1670."""
    step1 = Step(id="step1", execute=lambda ctx: {"result": "success"})

    async def hello(ctx: StepContext[Any]) -> str:
        return "Hello " + ctx.input_data["result"]

    step2 = Step(
        id="step2",
        execute=lambda ctx: {"result": ctx.input_data["test"], "second": ctx.input_data["test2"]},
    )
    wf = Workflow(id="test-workflow", input_schema=Cool).then(step1)
    wf.map({"test": {"init_data": wf, "path": "cool"}, "test2": {"fn": hello}}).then(step2)
    wf.map(
        {
            "result": {"step": step2, "path": "result"},
            "second": {"fn": lambda ctx: ctx.get_step_result(step1)["result"]},
        }
    )
    result = await _start(pm, wf, {"cool": "test-input"})
    assert result.status == "success"
    assert steps(result)["step2"] == ok(
        {"test": "test-input", "test2": "Hello success"},
        {"result": "test-input", "second": "Hello success"},
    )
    assert result.result == {"result": "test-input", "second": "success"}


@pytest.mark.asyncio
async def test_should_resolve_variables_from_previous_steps(pm: PluginManager) -> None:
    """workflow.test.ts line 1754."""
    seen: list[Any] = []
    step1 = Step(id="step1", execute=lambda ctx: {"nested": {"value": "step1-data"}})
    wf = (
        Workflow(id="test-workflow")
        .then(step1)
        .map({"previousValue": {"step": step1, "path": "nested.value"}})
        .then(_recording("step2", {"result": "success"}, seen))
    )
    await _start(pm, wf, {})
    assert seen == [{"previousValue": "step1-data"}]


@pytest.mark.asyncio
async def test_should_resolve_inputs_from_previous_steps_that_are_not_objects(
    pm: PluginManager,
) -> None:
    """workflow.test.ts line 1802."""
    wf = (
        Workflow(id="test-workflow")
        .then(Step(id="step1", execute=lambda ctx: "step1-data"))
        .then(Step(id="step2", execute=lambda ctx: {"result": "success", "input": ctx.input_data}))
    )
    result = await _start(pm, wf, {})
    assert steps(result) == {
        "input": {},
        "step1": ok({}, "step1-data"),
        "step2": ok("step1-data", {"result": "success", "input": "step1-data"}),
    }


@pytest.mark.asyncio
async def test_should_resolve_inputs_from_previous_steps_that_are_arrays(
    pm: PluginManager,
) -> None:
    """workflow.test.ts line 1852."""
    wf = (
        Workflow(id="test-workflow")
        .then(Step(id="step1", execute=lambda ctx: [{"str": "step1-data"}]))
        .then(Step(id="step2", execute=lambda ctx: {"result": "success", "input": ctx.input_data}))
    )
    result = await _start(pm, wf, {})
    assert steps(result) == {
        "input": {},
        "step1": ok({}, [{"str": "step1-data"}]),
        "step2": ok(
            [{"str": "step1-data"}], {"result": "success", "input": [{"str": "step1-data"}]}
        ),
    }


@pytest.mark.asyncio
async def test_should_resolve_inputs_from_previous_steps_that_are_arrays_via_map(
    pm: PluginManager,
) -> None:
    """workflow.test.ts line 1902."""
    step1 = Step(id="step1", execute=lambda ctx: [{"str": "step1-data"}])
    wf = (
        Workflow(id="test-workflow")
        .then(step1)
        .map({"ary": {"step": step1, "path": "."}})
        .then(
            Step(
                id="step2",
                execute=lambda ctx: {"result": "success", "input": ctx.input_data["ary"]},
            )
        )
    )
    result = await _start(pm, wf, {})
    assert steps(result)["step2"] == ok(
        {"ary": [{"str": "step1-data"}]}, {"result": "success", "input": [{"str": "step1-data"}]}
    )


def _candidates(ctx: StepContext[Any], sep: str) -> Any:
    names = sep.join(c["name"] for c in ctx.input_data["candidates"])
    return {"result": names or "none", "second": ctx.input_data["iteration"]}


@pytest.mark.asyncio
async def test_should_resolve_constant_values_via_map(pm: PluginManager) -> None:
    """workflow.test.ts line 1961."""
    wf = (
        Workflow(id="test-workflow", input_schema=Cool)
        .then(Step(id="step1", execute=lambda ctx: {"result": "success"}))
        .map({"candidates": {"value": []}, "iteration": {"value": 0}})
        .then(Step(id="step2", execute=lambda ctx: _candidates(ctx, "")))
    )
    result = await _start(pm, wf, {"cool": "test-input"})
    assert steps(result)["step2"] == ok(
        {"candidates": [], "iteration": 0}, {"result": "none", "second": 0}
    )


@pytest.mark.asyncio
async def test_should_resolve_fully_dynamic_input_via_map(pm: PluginManager) -> None:
    """workflow.test.ts line 2023."""

    async def dynamic(ctx: StepContext[Any]) -> Any:
        return {
            "candidates": [{"name": ctx.input_data["result"]}, {"name": "hello"}],
            "iteration": 0,
        }

    wf = (
        Workflow(id="test-workflow", input_schema=Cool)
        .then(Step(id="step1", execute=lambda ctx: {"result": "success"}))
        .map(dynamic)
        .then(Step(id="step2", execute=lambda ctx: _candidates(ctx, ", ")))
    )
    result = await _start(pm, wf, {"cool": "test-input"})
    assert steps(result)["step2"] == ok(
        {"candidates": [{"name": "success"}, {"name": "hello"}], "iteration": 0},
        {"result": "success, hello", "second": 0},
    )
