"""Mastra's ``describe('consecutive parallel executions')`` (workflow.test.ts line 7909):
a parallel stage's output is a plain dict keyed by step id, the next stage's input."""

from __future__ import annotations

from typing import Any

import pytest

from stepstream import PluginManager, Step, StepContext, Workflow

from .expect import ok, steps


@pytest.mark.asyncio
async def test_should_support_consecutive_parallel_calls_with_proper_type_inference(
    pm: PluginManager,
) -> None:
    """workflow.test.ts line 7910."""
    seen: dict[str, Any] = {}

    def make(step_id: str, fn: Any) -> Step[Any, Any]:
        def execute(ctx: StepContext[Any]) -> Any:
            seen[step_id] = ctx.input_data
            return fn(ctx.input_data)

        return Step(id=step_id, execute=execute)

    both = {
        "step1": {"result1": "processed-test-data"},
        "step2": {"result2": "transformed-test-data"},
    }
    wf = (
        Workflow(id="consecutive-parallel-workflow")
        .parallel(
            [
                make("step1", lambda i: {"result1": f"processed-{i['input']}"}),
                make("step2", lambda i: {"result2": f"transformed-{i['input']}"}),
            ]
        )
        .parallel(
            [
                make(
                    "step3",
                    lambda i: {
                        "result3": f"combined-{i['step1']['result1']}-{i['step2']['result2']}"
                    },
                ),
                make(
                    "step4",
                    lambda i: {"result4": f"final-{i['step1']['result1']}-{i['step2']['result2']}"},
                ),
            ]
        )
        .commit()
    )
    result = await (await wf.create_run(plugin_manager=pm)).start({"input": "test-data"})
    assert seen == {
        "step1": {"input": "test-data"},
        "step2": {"input": "test-data"},
        "step3": both,
        "step4": both,
    }
    assert result.status == "success"
    assert steps(result)["step1"] == ok({"input": "test-data"}, both["step1"])
    assert steps(result)["step2"] == ok({"input": "test-data"}, both["step2"])
    assert steps(result)["step3"] == ok(
        both, {"result3": "combined-processed-test-data-transformed-test-data"}
    )
    assert steps(result)["step4"] == ok(
        both, {"result4": "final-processed-test-data-transformed-test-data"}
    )
