"""Mastra's ``describe('if-else branching')`` (workflow.test.ts line 3608)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from stepstream import PluginManager, Step, StepContext, Workflow, WorkflowResult


def _below_five(ctx: StepContext[Any]) -> bool:
    return not ctx.input_data["newValue"] or ctx.input_data["newValue"] < 5


def _five_or_more(ctx: StepContext[Any]) -> bool:
    return bool(ctx.input_data["newValue"] >= 5)


async def _counter(pm: PluginManager, start_value: int, calls: Counter[str]) -> WorkflowResult:
    def start(ctx: StepContext[Any]) -> Any:
        calls["start"] += 1
        return {"newValue": (ctx.input_data.get("startValue") or 0) + 1}

    def other(ctx: StepContext[Any]) -> Any:
        calls["other"] += 1
        return {"newValue": ctx.input_data["newValue"], "other": 26}

    def final(ctx: StepContext[Any]) -> Any:
        calls["final"] += 1
        return {"finalValue": ctx.input_data.get("newValue", 0) + ctx.input_data.get("other", 0)}

    else_branch = (
        Workflow(id="else-branch")
        .then(Step(id="other", execute=other))
        .then(Step(id="finalElse", execute=final))
        .commit()
    )
    wf = (
        Workflow(id="counter-workflow")
        .then(Step(id="start", execute=start))
        .branch([(_below_five, Step(id="finalIf", execute=final)), (_five_or_more, else_branch)])
        .commit()
    )
    return await (await wf.create_run(plugin_manager=pm)).start({"startValue": start_value})


@pytest.mark.asyncio
async def test_should_run_the_if_then_branch(pm: PluginManager) -> None:
    """workflow.test.ts line 3609."""
    calls: Counter[str] = Counter()
    result = await _counter(pm, 1, calls)
    assert calls == {"start": 1, "final": 1}
    wire = result.to_wire()["steps"]
    assert wire["finalIf"]["output"] == {"finalValue": 2}
    assert wire["start"]["output"] == {"newValue": 2}


@pytest.mark.asyncio
async def test_should_run_the_else_branch(pm: PluginManager) -> None:
    """workflow.test.ts line 3722."""
    calls: Counter[str] = Counter()
    result = await _counter(pm, 6, calls)
    assert calls == {"start": 1, "other": 1, "final": 1}
    wire = result.to_wire()["steps"]
    assert wire["else-branch"]["output"] == {"finalValue": 26 + 6 + 1}
    assert wire["start"]["output"] == {"newValue": 7}
