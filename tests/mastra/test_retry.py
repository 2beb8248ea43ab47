"""Mastra's ``describe('Retry')`` (workflow.test.ts line 3974). Mastra sets retries on the
workflow (``retryConfig: {attempts, delay}``); stepstream sets them on each step
(``Step(retries=..., retry_delay=...)``), so the port puts them on the failing step."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from stepstream import PluginManager, Step, StepContext, Workflow

from .expect import ok, steps


async def _retried(pm: PluginManager, **retry: Any) -> Counter[str]:
    calls: Counter[str] = Counter()

    def first(ctx: StepContext[Any]) -> Any:
        calls["step1"] += 1
        return {"result": "success"}

    def second(ctx: StepContext[Any]) -> Any:
        calls["step2"] += 1
        raise Exception("Step failed")  # Mastra's plain `new Error`

    wf = (
        Workflow(id="test-workflow")
        .then(Step(id="step1", execute=first))
        .then(Step(id="step2", execute=second, **retry))
        .commit()
    )
    result = await (await wf.create_run(plugin_manager=pm)).start({})
    assert steps(result)["step1"] == ok({}, {"result": "success"})
    record = steps(result)["step2"]
    assert record["status"] == "failed" and record["payload"] == {"result": "success"}
    assert record["error"].startswith("Exception: Step failed")
    return calls


@pytest.mark.asyncio
async def test_should_retry_a_step_default_0_times(pm: PluginManager) -> None:
    """workflow.test.ts line 3975."""
    assert await _retried(pm) == {"step1": 1, "step2": 1}


@pytest.mark.asyncio
async def test_should_retry_a_step_with_a_custom_retry_config(pm: PluginManager) -> None:
    """workflow.test.ts line 4033 (5 retries + 1 initial call; no delay, no waiting in tests)."""
    assert await _retried(pm, retries=5, retry_delay=0) == {"step1": 1, "step2": 6}
