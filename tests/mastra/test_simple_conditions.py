"""Mastra's ``describe('Simple Conditions')`` (workflow.test.ts line 2082)."""

from __future__ import annotations

from typing import Any

import pytest

from stepstream import PluginManager, Step, StepContext, Workflow

from .expect import ok, steps


def _called(step_id: str, value: Any, calls: list[str]) -> Step[Any, Any]:
    def execute(ctx: StepContext[Any]) -> Any:
        calls.append(step_id)
        return value

    return Step(id=step_id, execute=execute)


@pytest.mark.asyncio
async def test_should_follow_conditional_chains(pm: PluginManager) -> None:
    """workflow.test.ts line 2083 (a map source naming ``[step3, step2]``: the one that ran)."""
    calls: list[str] = []
    step2 = _called("step2", {"result": "step2"}, calls)
    step3 = _called("step3", {"result": "step3"}, calls)

    async def succeeded(ctx: StepContext[Any]) -> bool:
        return bool(ctx.input_data["status"] == "success")

    async def failed(ctx: StepContext[Any]) -> bool:
        return bool(ctx.input_data["status"] == "failed")

    wf = (
        Workflow(id="test-workflow")
        .then(_called("step1", {"status": "success"}, calls))
        .branch([(succeeded, step2), (failed, step3)])
        .map({"result": {"step": [step3, step2], "path": "result"}})
        .then(Step(id="step4", execute=lambda ctx: {"result": ctx.input_data["result"]}))
        .commit()
    )
    result = await (await wf.create_run(plugin_manager=pm)).start({"status": "success"})
    assert calls == ["step1", "step2"]
    wire = steps(result)
    assert wire["input"] == {"status": "success"}
    assert wire["step1"]["output"] == {"status": "success"}
    assert wire["step2"]["output"] == {"result": "step2"}
    assert wire["step4"]["output"] == {"result": "step2"}


@pytest.mark.asyncio
async def test_should_handle_failing_dependencies(pm: PluginManager) -> None:
    """workflow.test.ts line 2167 (``Type: message`` errors, per the CONTRACT)."""
    calls: list[str] = []

    def fail(ctx: StepContext[Any]) -> Any:
        raise Exception("Failed")  # Mastra's plain `new Error`

    wf = (
        Workflow(id="test-workflow")
        .then(Step(id="step1", execute=fail))
        .then(_called("step2", {}, calls))
        .commit()
    )
    result = await (await wf.create_run(plugin_manager=pm)).start({})
    assert calls == []
    assert steps(result)["input"] == {}
    record = steps(result)["step1"]
    assert record["status"] == "failed" and record["payload"] == {}
    assert record["error"].startswith("Exception: Failed")


@pytest.mark.asyncio
async def test_should_support_simple_string_conditions(pm: PluginManager) -> None:
    """workflow.test.ts line 2220 (a map source naming a step that did not run gives None)."""
    calls: list[str] = []
    step3 = _called("step3", {"result": "step3"}, calls)
    wf = (
        Workflow(id="test-workflow")
        .then(_called("step1", {"status": "success"}, calls))
        .branch(
            [
                (
                    lambda ctx: ctx.input_data["status"] == "success",
                    _called("step2", {"result": "step2"}, calls),
                )
            ]
        )
        .map({"result": {"step": step3, "path": "result"}})
        .branch([(lambda ctx: ctx.input_data["result"] == "unexpected value", step3)])
        .commit()
    )
    result = await (await wf.create_run(plugin_manager=pm)).start({"status": "success"})
    assert calls == ["step1", "step2"]
    wire = steps(result)
    assert wire["step1"] == ok({"status": "success"}, {"status": "success"})
    assert wire["step2"] == ok({"status": "success"}, {"result": "step2"})


@pytest.mark.asyncio
async def test_should_support_custom_condition_functions(pm: PluginManager) -> None:
    """workflow.test.ts line 2302."""
    calls: list[str] = []
    step1 = _called("step1", {"count": 5}, calls)

    async def more_than_three(ctx: StepContext[Any]) -> bool:
        found = ctx.get_step_result(step1)
        return bool(found["count"] > 3) if found else False

    wf = (
        Workflow(id="test-workflow")
        .then(step1)
        .branch([(more_than_three, _called("step2", None, calls))])
        .commit()
    )
    result = await (await wf.create_run(plugin_manager=pm)).start({"count": 5})
    assert calls == ["step1", "step2"]
    assert steps(result)["step1"] == ok({"count": 5}, {"count": 5})
    assert steps(result)["step2"] == ok({"count": 5}, None)
