"""Mastra's ``describe('foreach')`` (workflow.test.ts line 3399). Mastra's steps sleep one
second each and the tests measure the total time; here the items wait on each other instead,
and the test counts how many ran at once (no timing in tests)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stepstream import PluginManager, Step, StepContext, Workflow

from .expect import ok, steps

ITEMS = [{"value": 1}, {"value": 22}, {"value": 333}]


async def _foreach(pm: PluginManager, concurrency: int) -> int:
    """Run Mastra's foreach workflow; return the most items that ran at once."""
    running = 0
    most = 0
    gate = asyncio.Event()

    async def map_item(ctx: StepContext[Any]) -> Any:
        nonlocal running, most
        running += 1
        most = max(most, running)
        if running == concurrency:
            gate.set()  # as many as may run at once are running
        await gate.wait()
        running -= 1
        return {"value": ctx.input_data["value"] + 11}

    def final(ctx: StepContext[Any]) -> Any:
        return {"finalValue": sum(item["value"] for item in ctx.input_data)}

    wf = Workflow(id="counter-workflow")
    step = Step(id="map", description="Maps (+11) on the current value", execute=map_item)
    wf.foreach(step, concurrency=concurrency) if concurrency > 1 else wf.foreach(step)
    wf.then(Step(id="final", execute=final)).commit()
    result = await (await wf.create_run(plugin_manager=pm)).start(ITEMS)
    outputs = [{"value": 12}, {"value": 33}, {"value": 344}]
    assert steps(result) == {
        "input": ITEMS,
        "map": ok(ITEMS, outputs),
        "final": ok(outputs, {"finalValue": 1 + 11 + (22 + 11) + (333 + 11)}),
    }
    return most


@pytest.mark.asyncio
async def test_should_run_a_single_item_concurrency_default_for_loop(pm: PluginManager) -> None:
    """workflow.test.ts line 3400."""
    assert await _foreach(pm, 1) == 1


@pytest.mark.asyncio
async def test_should_run_a_all_item_concurrency_for_loop(pm: PluginManager) -> None:
    """workflow.test.ts line 3468."""
    assert await _foreach(pm, 3) == 3


@pytest.mark.asyncio
async def test_should_run_a_partial_item_concurrency_for_loop(pm: PluginManager) -> None:
    """workflow.test.ts line 3538."""
    assert await _foreach(pm, 2) == 2
