"""Mastra's ``describe('Complex Conditions')`` (workflow.test.ts line 3160)."""

from __future__ import annotations

from typing import Any

import pytest

from stepstream import PluginManager, Step, StepContext, Workflow

from .expect import ok, steps


@pytest.mark.asyncio
async def test_should_handle_nested_and_or_conditions(pm: PluginManager) -> None:
    """workflow.test.ts line 3161."""
    calls: list[str] = []
    first = {"status": "partial", "score": 75, "flags": {"isValid": True}}

    def called(step_id: str, value: Any) -> Step[Any, Any]:
        def execute(ctx: StepContext[Any]) -> Any:
            calls.append(step_id)
            return value

        return Step(id=step_id, execute=execute)

    step1, step2, step3 = (
        called("step1", first),
        called("step2", {"result": "step2"}),
        called("step3", {"result": "step3"}),
    )

    def partial_enough(ctx: StepContext[Any]) -> bool:
        r = ctx.get_step_result(step1)
        return bool(
            r["status"] == "success"
            or (r["status"] == "partial" and r["score"] >= 70 and r["flags"]["isValid"])
        )

    def needs_more(ctx: StepContext[Any]) -> bool:
        return not ctx.input_data["result"] or ctx.get_step_result(step1)["score"] < 70

    wf = (
        Workflow(id="test-workflow")
        .then(step1)
        .branch([(partial_enough, step2)])
        .map({"result": {"step": step2, "path": "result"}})
        .branch([(needs_more, step3)])
        .map({"result": {"step": step3, "path": "result"}})
        .commit()
    )
    result = await (await wf.create_run(plugin_manager=pm)).start({})
    assert calls == ["step1", "step2"]
    assert steps(result)["step2"] == ok(first, {"result": "step2"})
