"""Mastra's ``describe('Error Handling')`` (workflow.test.ts line 2934).

Error strings are ``Type: message`` where Mastra writes a JS stack (CONTRACT: "error strings
are `Type: message`"), so ``/^Error: .../`` becomes ``^Exception: ...``.
"""

from __future__ import annotations

from typing import Any

import pytest

from stepstream import PluginManager, Step, StepContext, Workflow

from .expect import ok, steps


def _fail(ctx: StepContext[Any]) -> Any:
    raise Exception("Step execution failed")  # Mastra's plain `new Error`


@pytest.mark.asyncio
async def test_should_handle_step_execution_errors(pm: PluginManager) -> None:
    """workflow.test.ts line 2935."""
    wf = Workflow(id="test-workflow").then(Step(id="step1", execute=_fail)).commit()
    result = await (await wf.create_run(plugin_manager=pm)).start({})
    assert result.status == "failed"
    assert result.error is not None and result.error.startswith("Exception: Step execution failed")
    assert steps(result)["input"] == {}
    record = steps(result)["step1"]
    assert record["status"] == "failed" and record["payload"] == {}
    assert record["error"].startswith("Exception: Step execution failed")


@pytest.mark.asyncio
async def test_should_handle_variable_resolution_errors(pm: PluginManager) -> None:
    """workflow.test.ts line 2984."""
    wf = (
        Workflow(id="test-workflow")
        .then(Step(id="step1", execute=lambda ctx: {"data": "success"}))
        .map({"data": {"step": "step1", "path": "data"}})
        .then(Step(id="step2", execute=lambda ctx: None))
        .commit()
    )
    result = await (await wf.create_run(plugin_manager=pm)).start({})
    assert steps(result)["step1"] == ok({}, {"data": "success"})
    assert steps(result)["step2"] == ok({"data": "success"}, None)


def _parallel_with_a_failure() -> Workflow:
    return (
        Workflow(id="test-workflow")
        .parallel([Step(id="step1", execute=lambda ctx: {}), Step(id="step2", execute=_fail)])
        .then(Step(id="step3", execute=lambda ctx: {}))
        .commit()
    )


@pytest.mark.asyncio
async def test_should_handle_step_execution_errors_within_branches(pm: PluginManager) -> None:
    """workflow.test.ts line 3037."""
    result = await (await _parallel_with_a_failure().create_run(plugin_manager=pm)).start({})
    record = steps(result)
    assert record["step1"]["status"] == "success" and record["step1"]["payload"] == {}
    assert record["step2"]["status"] == "failed" and record["step2"]["payload"] == {}
    assert record["step2"]["error"].startswith("Exception: Step execution failed")
    assert "step3" not in record


@pytest.mark.asyncio
async def test_should_handle_step_execution_errors_within_nested_workflows(
    pm: PluginManager,
) -> None:
    """workflow.test.ts line 3096 (Mastra wraps the error once more: ``Error: Error: ...``)."""
    main = Workflow(id="main-workflow").then(_parallel_with_a_failure()).commit()
    result = await (await main.create_run(plugin_manager=pm)).start({})
    record = steps(result)["test-workflow"]
    assert record["status"] == "failed" and record["payload"] == {}
    assert "Step execution failed" in record["error"]
