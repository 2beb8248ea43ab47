"""Mastra's ``describe('Loops')`` (workflow.test.ts line 3261)."""

from __future__ import annotations

from typing import Any

import pytest

from stepstream import PluginManager, Step, StepContext, Workflow


def _counter(loop: str) -> tuple[Workflow, list[str]]:
    calls: list[str] = []

    def increment(ctx: StepContext[Any]) -> Any:
        calls.append("increment")
        return {"value": ctx.input_data["value"] + 1}

    def final(ctx: StepContext[Any]) -> Any:
        calls.append("final")
        return {"finalValue": ctx.input_data["value"]}

    step = Step(id="increment", description="Increments the current value by 1", execute=increment)
    wf = Workflow(id="counter-workflow")
    if loop == "until":
        wf.dountil(step, lambda ctx: ctx.input_data["value"] >= 12)
    else:
        wf.dowhile(step, lambda ctx: ctx.input_data["value"] < 12)
    return wf.then(Step(id="final", execute=final)).commit(), calls


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("loop", "line"), [("until", 3262), ("while", 3330)], ids=["until", "while"]
)
async def test_should_run_an_until_loop_and_a_while_loop(
    loop: str, line: int, pm: PluginManager
) -> None:
    """workflow.test.ts line 3262 ('should run an until loop') and line 3330 ('should run a
    while loop'): the same workflow with ``dountil`` and ``dowhile``."""
    wf, calls = _counter(loop)
    result = await (await wf.create_run(plugin_manager=pm)).start({"target": 10, "value": 0})
    assert calls.count("increment") == 12 and calls.count("final") == 1
    assert result.result == {"finalValue": 12}
    assert result.to_wire()["steps"]["increment"]["output"] == {"value": 12}
