"""Running workflows: control flow, step context, resume paths, cancellation, sync steps."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from pydantic import BaseModel

from stepstream import (
    PluginManager,
    RunStateError,
    RuntimeContext,
    StepContext,
    Workflow,
    step,
)
from stepstream.testing import Recorder

from ..conftest import assert_no_tasks_left


class Num(BaseModel):
    n: int


@step(id="double")
async def double(ctx: StepContext[Num]) -> Num:
    return Num(n=ctx.input_data.n * 2)


@step(id="plus-one")
async def plus_one(ctx: StepContext[Num]) -> Num:
    return Num(n=ctx.input_data.n + 1)


async def _start(wf: Workflow, pm: PluginManager, data: Any, **kw: Any) -> Any:
    run = await wf.create_run(plugin_manager=pm)
    return await run.start(data, **kw)


@pytest.mark.asyncio
async def test_branch_runs_every_true_condition_and_none(pm: PluginManager) -> None:
    wf = (
        Workflow(id="wf")
        .branch([(lambda c: c.input_data["n"] > 0, double), (lambda c: True, plus_one)])
        .commit()
    )
    assert (await _start(wf, pm, {"n": 2})).result == {"double": {"n": 4}, "plus-one": {"n": 3}}
    nothing = Workflow(id="wf2").branch([(lambda c: False, double)]).commit()
    result = await _start(nothing, pm, {"n": 2})
    assert result.status == "success" and result.result == {}


@pytest.mark.asyncio
async def test_failing_condition_fails_the_run(pm: PluginManager) -> None:
    def broken(ctx: StepContext[Any]) -> bool:
        raise ValueError("bad condition")

    wf = Workflow(id="wf").branch([(broken, double)]).commit()
    result = await _start(wf, pm, {"n": 1})
    assert result.status == "failed"
    assert result.error == (
        "StepExecutionError: the condition of branch 0 (step 'double') raised "
        "ValueError: bad condition"
    )


@pytest.mark.asyncio
async def test_foreach_limits_concurrency_and_keeps_input_order(
    pm: PluginManager, recorder: Recorder
) -> None:
    running = 0
    peak = 0
    gate = asyncio.Event()

    @step(id="sq")
    async def sq(ctx: StepContext[Num]) -> Num:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        if running == 2:
            gate.set()
        await gate.wait()
        running -= 1
        return Num(n=ctx.input_data.n**2)

    wf = Workflow(id="wf").foreach(sq, concurrency=2).commit()
    result = await _start(wf, pm, [{"n": i} for i in range(1, 6)])
    assert result.result == [{"n": 1}, {"n": 4}, {"n": 9}, {"n": 16}, {"n": 25}]
    assert peak == 2
    assert recorder.types() == ["start", "step-start", "step-result", "step-finish", "finish"]


@pytest.mark.asyncio
async def test_foreach_needs_a_list_and_reports_item_errors(pm: PluginManager) -> None:
    wf = Workflow(id="wf").foreach(double).commit()
    not_list = await _start(wf, pm, {"n": 1})
    assert not_list.error.startswith("InputValidationError: foreach step 'double' needs a list")
    bad_item = await _start(wf, pm, [{"n": 1}, {"n": "x"}])
    assert bad_item.status == "failed" and "step 'double' input does not match" in bad_item.error


@pytest.mark.asyncio
async def test_nested_failure_fails_the_outer_step(pm: PluginManager, recorder: Recorder) -> None:
    @step(id="explode")
    async def explode(ctx: StepContext[Any]) -> Any:
        raise RuntimeError("inner failure")

    inner = Workflow(id="inner").then(plus_one).then(explode).commit()
    wf = Workflow(id="outer").then(inner).then(double).commit()
    result = await _start(wf, pm, {"n": 1})
    assert result.status == "failed" and result.error == "RuntimeError: inner failure"
    ids = [(e.type, getattr(e, "step_id", None)) for e in recorder.events]
    assert ("step-result", "inner.explode") in ids and ("step-result", "inner") in ids
    assert ("step-start", "double") not in ids
    assert list(result.steps) == ["inner"]


@pytest.mark.asyncio
async def test_context_gives_earlier_results_init_data_and_runtime_context(
    pm: PluginManager,
) -> None:
    captured: dict[str, Any] = {}

    @step(id="look")
    async def look(ctx: StepContext[Num]) -> Num:
        captured["double"] = ctx.get_step_result(double)
        captured["by_id"] = ctx.get_step_result("double")
        captured["missing"] = ctx.get_step_result("nope")
        captured["init"] = ctx.get_init_data()
        captured["locale"] = ctx.runtime_context.get("locale")
        captured["ids"] = (ctx.run_id, ctx.workflow_id, ctx.step_id)
        return ctx.input_data

    wf = Workflow(id="wf", input_schema=Num).then(double).then(look).commit()
    run = await wf.create_run(plugin_manager=pm)
    await run.start({"n": 3}, RuntimeContext({"locale": "fr"}))
    assert captured["double"] == Num(n=6) and captured["by_id"] == Num(n=6)
    assert captured["missing"] is None
    assert captured["init"] == Num(n=3)
    assert captured["locale"] == "fr"
    assert captured["ids"] == (run.run_id, "wf", "look")


@pytest.mark.asyncio
async def test_sync_steps_run_in_a_worker_thread(pm: PluginManager) -> None:
    @step(id="blocking")
    def blocking(ctx: StepContext[Any]) -> Any:
        return {"thread": threading.get_ident()}

    result = await _start(Workflow(id="wf").then(blocking).commit(), pm, {})
    assert result.result["thread"] != threading.get_ident()


class Approval(BaseModel):
    ok: bool


def _approval_step(step_id: str) -> Any:
    @step(id=step_id, resume_schema=Approval)
    async def gate(ctx: StepContext[Any]) -> Any:
        if ctx.resume_data is None:
            ctx.suspend({"waiting": step_id})
        return {"approved": ctx.resume_data.ok, "by": step_id}

    return gate


@pytest.mark.asyncio
async def test_nested_suspend_and_resume_by_path(pm: PluginManager, recorder: Recorder) -> None:
    inner = Workflow(id="inner").then(_approval_step("approve")).commit()
    wf = Workflow(id="outer").then(plus_one).then(inner).commit()
    run = await wf.create_run(plugin_manager=pm)
    suspended = await run.start({"n": 1})
    assert suspended.status == "suspended"
    assert suspended.suspended == [["inner", "approve"]]
    # The inner payload, with Mastra's `__workflow_meta` saying where inside `inner` it is.
    assert suspended.steps["inner"].suspend_payload == {
        "waiting": "approve",
        "__workflow_meta": {"runId": run.run_id, "path": ["approve"]},
    }
    done = await run.resume(step=["inner", "approve"], resume_data={"ok": True})
    assert done.status == "success"
    assert done.result == {"approved": True, "by": "approve"}
    types = [(e.type, getattr(e, "step_id", None)) for e in recorder.events]
    assert types.count(("step-start", "plus-one")) == 1  # completed steps never rerun
    assert types[-1] == ("finish", None)
    assert types.count(("step-suspended", "inner.approve")) == 1
    await assert_no_tasks_left()


@pytest.mark.asyncio
async def test_parallel_suspensions_resume_one_at_a_time(pm: PluginManager) -> None:
    wf = Workflow(id="wf").parallel([_approval_step("left"), _approval_step("right")]).commit()
    run = await wf.create_run(plugin_manager=pm)
    first = await run.start({})
    assert sorted(first.suspended) == [["left"], ["right"]]
    with pytest.raises(RunStateError, match="2 suspended steps"):
        await run.resume(resume_data={"ok": True})
    with pytest.raises(RunStateError, match="'nope' is not suspended"):
        await run.resume(step="nope", resume_data={"ok": True})
    second = await run.resume(step="left", resume_data={"ok": True})
    assert second.status == "suspended" and second.suspended == [["right"]]
    third = await run.resume(resume_data={"ok": False})
    assert third.status == "success"
    assert third.result == {
        "left": {"approved": True, "by": "left"},
        "right": {"approved": False, "by": "right"},
    }
    with pytest.raises(RunStateError, match="is not suspended"):
        await run.resume(step="left", resume_data={"ok": True})


@pytest.mark.asyncio
async def test_invalid_resume_data_fails_the_step(pm: PluginManager) -> None:
    run = (
        await Workflow(id="wf").then(_approval_step("gate")).commit().create_run(plugin_manager=pm)
    )
    await run.start({})
    result = await run.resume(resume_data={"ok": "maybe"})
    assert result.status == "failed"
    assert result.error.startswith("InputValidationError: step 'gate' resume data does not match")


@pytest.mark.asyncio
async def test_close_on_suspend_then_a_new_stream_follows_the_resume(
    pm: PluginManager,
) -> None:
    @step(id="after")
    async def after(ctx: StepContext[Any]) -> Any:
        return {"after": ctx.input_data}

    wf = Workflow(id="wf").then(_approval_step("gate")).then(after).commit()
    run = await wf.create_run(plugin_manager=pm)
    first = [e.type async for e in run.stream(input_data={}, close_on_suspend=True)]
    assert first == ["start", "step-start", "step-suspended"]
    assert run.status == "suspended"
    second = run.stream()
    resumed = asyncio.create_task(run.resume(resume_data={"ok": True}))
    types = [e.type async for e in second]
    assert (await resumed).result == {"after": {"approved": True, "by": "gate"}}
    assert types == ["step-start", "step-result", "step-finish"] * 2 + ["finish"]


@pytest.mark.asyncio
async def test_canceling_a_suspended_run_finishes_its_stream(pm: PluginManager) -> None:
    run = (
        await Workflow(id="wf").then(_approval_step("gate")).commit().create_run(plugin_manager=pm)
    )
    stream = run.stream(input_data={})
    events = aiter(stream)
    types = [(await anext(events)).type for _ in range(3)]
    assert types == ["start", "step-start", "step-suspended"]
    assert (await stream.get_workflow_state()).status == "suspended"
    result = await run.cancel()
    assert result is not None and result.status == "canceled"
    assert [e.type async for e in events] == ["finish"]
    assert result.to_wire()["status"] == "canceled"
    await assert_no_tasks_left()


@pytest.mark.asyncio
async def test_a_run_starts_once(pm: PluginManager) -> None:
    run = await Workflow(id="wf").then(double).commit().create_run(plugin_manager=pm)
    assert run.status == "pending" and await run.cancel() is None
    await run.start({"n": 1})
    with pytest.raises(RunStateError, match="already started"):
        await run.start({"n": 1})


@pytest.mark.asyncio
async def test_resume_right_after_the_suspended_event(pm: PluginManager) -> None:
    """A consumer reacting to `step-suspended` at once must not be told "not suspended"."""
    run = (
        await Workflow(id="wf").then(_approval_step("gate")).commit().create_run(plugin_manager=pm)
    )
    stream = run.stream(input_data={})
    types = []
    async for event in stream:
        types.append(event.type)
        if event.type == "step-suspended":
            result = await run.resume(resume_data={"ok": True})
            assert result.status == "success"
    assert types[-1] == "finish" and types.count("step-suspended") == 1
