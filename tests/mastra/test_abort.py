"""Mastra's ``describe('abort')`` (workflow.test.ts line 2763): ``run.cancel()``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stepstream import Event, PluginManager, Step, StepContext, Workflow

from .expect import ok, steps


def _first() -> Step[Any, Any]:
    return Step(id="step1", execute=lambda ctx: {"result": "step1: " + ctx.input_data["value"]})


def _second() -> Step[Any, Any]:
    return Step(id="step2", execute=lambda ctx: {"result": "step2: " + ctx.input_data["result"]})


def _reached(run: Any, predicate: Any) -> asyncio.Event:
    reached = asyncio.Event()

    def on_event(event: Event) -> None:
        if predicate(event):
            reached.set()

    run.watch(on_event, "watch-v2")
    return reached


@pytest.mark.asyncio
async def test_should_be_able_to_abort_workflow_execution_in_between_steps(
    pm: PluginManager,
) -> None:
    """workflow.test.ts line 2764 (the cancel comes during the sleep between the steps)."""
    wf = Workflow(id="test-workflow").then(_first()).sleep(3600).then(_second()).commit()
    run = await wf.create_run(plugin_manager=pm)
    sleeping = _reached(
        run, lambda e: e.type == "step-waiting" and (e.step_id or "").startswith("sleep_")
    )
    starting = asyncio.create_task(run.start({"value": "test"}))
    await sleeping.wait()
    await run.cancel()
    result = await starting
    assert result.status == "canceled"
    assert steps(result)["step1"] == ok({"value": "test"}, {"result": "step1: test"})
    assert "step2" not in steps(result)


@pytest.mark.asyncio
async def test_should_be_able_to_abort_workflow_execution_immediately(pm: PluginManager) -> None:
    """workflow.test.ts line 2814. Mastra's step1 still completes (its abort is only checked
    between steps); ours is canceled before its first step, so step1 never runs: the run
    ends canceled either way, and step2 never runs."""
    wf = Workflow(id="test-workflow").then(_first()).then(_second()).commit()
    run = await wf.create_run(plugin_manager=pm)
    starting = asyncio.create_task(run.start({"value": "test"}))
    await asyncio.sleep(0)
    await run.cancel()
    result = await starting
    assert result.status == "canceled"
    assert "step2" not in steps(result)


@pytest.mark.asyncio
async def test_should_be_able_to_abort_workflow_execution_during_a_step(
    pm: PluginManager,
) -> None:
    """workflow.test.ts line 2862 (Mastra's ``abortSignal`` is our ``CancelledError`` and
    ``ctx.is_canceled``)."""
    saw_cancel: list[bool] = []

    async def second(ctx: StepContext[Any]) -> Any:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            saw_cancel.append(ctx.is_canceled)
            raise

    wf = Workflow(id="test-workflow").then(_first()).then(Step(id="step2", execute=second)).commit()
    run = await wf.create_run(plugin_manager=pm)
    running = _reached(run, lambda e: e.type == "step-start" and e.step_id == "step2")
    starting = asyncio.create_task(run.start({"value": "test"}))
    await running.wait()
    await run.cancel()
    result = await starting
    assert result.status == "canceled"
    assert saw_cancel == [True]
    assert steps(result)["step1"] == ok({"value": "test"}, {"result": "step1: test"})
