"""Mastra's ``describe('Basic Workflow Execution')`` (workflow.test.ts line 1071), its nested
``describe``s apart (``test_variable_resolution``, ``test_simple_conditions``)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from stepstream import (
    PluginManager,
    RunStateError,
    Step,
    StepContext,
    Workflow,
    WorkflowDefinitionError,
)

from .expect import NUMBER, ok, steps


def returning(step_id: str, value: Any, calls: list[str] | None = None) -> Step[Any, Any]:
    """A step whose function resolves to ``value`` (Mastra's ``vi.fn().mockResolvedValue``)."""

    async def execute(ctx: StepContext[Any]) -> Any:
        if calls is not None:
            calls.append(step_id)
        return value

    return Step(id=step_id, execute=execute)


@pytest.mark.asyncio
async def test_should_be_able_to_bail_workflow_execution(pm: PluginManager) -> None:
    """workflow.test.ts line 1072."""

    async def first(ctx: StepContext[Any]) -> Any:
        if ctx.input_data["value"] == "bail":
            ctx.bail({"result": "bailed"})
        return {"result": "step1: " + ctx.input_data["value"]}

    async def second(ctx: StepContext[Any]) -> Any:
        return {"result": "step2: " + ctx.input_data["result"]}

    wf = Workflow(id="test-workflow")
    wf.then(Step(id="step1", execute=first)).then(Step(id="step2", execute=second)).commit()
    result = await (await wf.create_run(plugin_manager=pm)).start({"value": "bail"})
    assert result.status == "success" and result.result == {"result": "bailed"}
    assert steps(result)["step1"] == ok({"value": "bail"}, {"result": "bailed"})
    assert "step2" not in steps(result)
    result2 = await (await wf.create_run(plugin_manager=pm)).start({"value": "no-bail"})
    assert steps(result2)["step1"] == ok({"value": "no-bail"}, {"result": "step1: no-bail"})
    assert steps(result2)["step2"] == ok(
        {"result": "step1: no-bail"}, {"result": "step2: step1: no-bail"}
    )


def test_should_throw_error_when_execution_flow_not_defined() -> None:
    """workflow.test.ts line 1138. We refuse the empty workflow at ``commit()`` (the first
    moment it is known), with Mastra's words first."""
    with pytest.raises(
        WorkflowDefinitionError, match=r"^Execution flow of workflow is not defined"
    ):
        Workflow(id="test-workflow").commit()
    with pytest.raises(
        WorkflowDefinitionError, match=r"^Execution flow of workflow is not defined"
    ):
        Workflow(id="test-workflow").create_run_sync()


def test_should_throw_error_when_execution_graph_is_not_committed() -> None:
    """workflow.test.ts line 1161."""
    wf = Workflow(id="test-workflow").then(returning("step1", {"result": "success"}))
    with pytest.raises(WorkflowDefinitionError, match=r"^Uncommitted step flow changes detected"):
        wf.create_run_sync()


@pytest.mark.asyncio
async def test_should_execute_a_single_step_workflow_successfully(pm: PluginManager) -> None:
    """workflow.test.ts line 1186."""
    calls: list[str] = []
    wf = Workflow(id="test-workflow").then(returning("step1", {"result": "success"}, calls))
    result = await (await wf.commit().create_run(plugin_manager=pm)).start({})
    assert calls == ["step1"]
    assert steps(result)["step1"] == ok({}, {"result": "success"})


class Hello(BaseModel, extra="forbid"):
    hello: str


class ResumeInfo(BaseModel):
    resumeInfo: Hello


class Result(BaseModel):
    result: str


@pytest.mark.asyncio
async def test_should_have_access_to_typed_workflow_results(pm: PluginManager) -> None:
    """workflow.test.ts line 1219."""

    async def execute(ctx: StepContext[Any]) -> Result:
        return Result(result="success")

    step1 = Step(
        id="step1",
        execute=execute,
        suspend_schema=Hello,
        resume_schema=ResumeInfo,
        output_schema=Result,
    )
    result = await (
        await Workflow(id="test-workflow").then(step1).commit().create_run(plugin_manager=pm)
    ).start({})
    assert steps(result)["step1"] == ok({}, {"result": "success"})


@pytest.mark.asyncio
async def test_should_execute_multiple_steps_in_parallel(pm: PluginManager) -> None:
    """workflow.test.ts line 1254."""
    calls: list[str] = []
    wf = Workflow(id="test-workflow").parallel(
        [
            returning("step1", {"value": "step1"}, calls),
            returning("step2", {"value": "step2"}, calls),
        ]
    )
    result = await (await wf.commit().create_run(plugin_manager=pm)).start({})
    assert sorted(calls) == ["step1", "step2"]
    assert steps(result) == {
        "input": {},
        "step1": ok({}, {"value": "step1"}),
        "step2": ok({}, {"value": "step2"}),
    }


@pytest.mark.asyncio
async def test_should_have_run_id_in_the_step_execute_function_bug_4260(
    pm: PluginManager,
) -> None:
    """workflow.test.ts line 1310."""
    step1 = Step(id="step1", execute=lambda ctx: {"value": ctx.run_id})
    run = await Workflow(id="test-workflow").then(step1).commit().create_run(plugin_manager=pm)
    result = await run.start({})
    assert steps(result) == {"input": {}, "step1": ok({}, {"value": run.run_id})}


def _sleepy(sleep: Any) -> tuple[Workflow, Step[Any, Any]]:
    async def second(ctx: StepContext[Any]) -> Any:
        return {"value": ctx.input_data["value"] + 1000}

    wf = Workflow(id="test-workflow").then(returning("step1", {"value": 1000}))
    return sleep(wf).then(Step(id="step2", execute=second)).commit(), second  # type: ignore[no-any-return]


@pytest.mark.asyncio
async def test_should_execute_a_a_sleep_step(pm: PluginManager) -> None:
    """workflow.test.ts line 2362 (stepstream counts seconds; no test waits on time)."""
    wf, _ = _sleepy(lambda wf: wf.sleep(0.01))
    result = await (await wf.create_run(plugin_manager=pm)).start({})
    assert steps(result)["step1"] == ok({}, {"value": 1000})
    assert steps(result)["step2"] == ok({"value": 1000}, {"value": 2000})


@pytest.mark.asyncio
async def test_should_execute_a_sleep_step_with_fn_parameter(pm: PluginManager) -> None:
    """workflow.test.ts line 2415."""
    seen: list[Any] = []

    async def duration(ctx: StepContext[Any]) -> float:
        seen.append(ctx.input_data)
        return ctx.input_data["value"] / 100_000

    wf, _ = _sleepy(lambda wf: wf.sleep(duration))
    result = await (await wf.create_run(plugin_manager=pm)).start({})
    assert seen == [{"value": 1000}]
    assert steps(result)["step2"] == ok({"value": 1000}, {"value": 2000})


@pytest.mark.asyncio
async def test_should_execute_a_a_sleep_until_step(pm: PluginManager) -> None:
    """workflow.test.ts line 2474."""
    wf, _ = _sleepy(lambda wf: wf.sleep_until(datetime.now(UTC) + timedelta(milliseconds=10)))
    result = await (await wf.create_run(plugin_manager=pm)).start({})
    assert steps(result)["step2"] == ok({"value": 1000}, {"value": 2000})


@pytest.mark.asyncio
async def test_should_execute_a_sleep_until_step_with_fn_parameter(pm: PluginManager) -> None:
    """workflow.test.ts line 2531."""

    async def until(ctx: StepContext[Any]) -> datetime:
        return datetime.now(UTC) + timedelta(microseconds=ctx.input_data["value"])

    wf, _ = _sleepy(lambda wf: wf.sleep_until(until))
    result = await (await wf.create_run(plugin_manager=pm)).start({})
    assert steps(result)["step2"] == ok({"value": 1000}, {"value": 2000})


def _event_workflow(**options: Any) -> Workflow:
    async def second(ctx: StepContext[Any]) -> Any:
        return {"result": ctx.input_data["result"], "resumed": ctx.resume_data}

    wf = Workflow(id="test-workflow").then(returning("step1", {"result": "success"}))
    return wf.wait_for_event("hello-event", Step(id="step2", execute=second), **options).commit()


@pytest.mark.asyncio
async def test_should_execute_a_wait_for_event_step(pm: PluginManager) -> None:
    """workflow.test.ts line 2590 (Mastra's "start() resolves after the event" is checked by
    the run still running, its start() not done, when the step waits)."""
    run = await _event_workflow().create_run(plugin_manager=pm)
    seen: list[tuple[str, bool]] = []

    async def on_event(event: Any) -> None:
        if event.type == "step-waiting":
            seen.append((run.status, starting.done()))
            await run.send_event("hello-event", {"data": "hello"})

    run.watch(on_event, "watch-v2")
    starting = asyncio.create_task(run.start({}))
    result = await starting
    assert seen == [("running", False)]
    assert result.status == "success"
    assert steps(result)["step1"] == ok({}, {"result": "success"})
    assert steps(result)["step2"] == ok(
        {"result": "success"},
        {"result": "success", "resumed": {"data": "hello"}},
        resumePayload={"data": "hello"},
        resumedAt=NUMBER,
    )


@pytest.mark.asyncio
async def test_should_execute_a_wait_for_event_step_after_timeout(pm: PluginManager) -> None:
    """workflow.test.ts line 2651 (Mastra's `expect.any(Error)`: ours names the event and
    the timeout, after Mastra's own text)."""
    result = await (await _event_workflow(timeout=0.01).create_run(plugin_manager=pm)).start({})
    assert result.status == "failed"
    assert steps(result)["step1"] == ok({}, {"result": "success"})
    step2 = steps(result)["step2"]
    assert step2 == {
        "status": "failed",
        "error": step2["error"],
        "payload": {"result": "success"},
        "startedAt": NUMBER,
        "endedAt": NUMBER,
    }
    assert step2["error"].startswith(
        "StepTimeoutError: Timeout waiting for event: step 'step2' waited longer than its "
        "timeout of 0.01s for event 'hello-event'"
    )
    assert step2["endedAt"] - step2["startedAt"] >= 10


@pytest.mark.asyncio
async def test_should_only_update_workflow_status_to_success_after_all_steps_have_run_successfully(
    pm: PluginManager,
) -> None:
    """workflow.test.ts line 2706 (the state is read while the last step runs, not later)."""
    release = asyncio.Event()

    async def final(ctx: StepContext[Any]) -> Any:
        await release.wait()
        return ctx.input_data

    wf = (
        Workflow(id="increment-workflow")
        .then(Step(id="increment", execute=lambda ctx: {"value": ctx.input_data["value"] + 1}))
        .then(Step(id="final", execute=final))
        .commit()
    )
    run = await wf.create_run(plugin_manager=pm)
    stream = run.stream({"value": 0})
    async for event in stream:
        if event.type == "step-finish" and event.step_id == "increment":
            assert run.current_state()["status"] == "running"
            release.set()
    assert (await stream.get_workflow_state()).status == "success"


@pytest.mark.asyncio
async def test_resume_of_a_run_that_never_suspended_says_so_in_mastras_words(
    pm: PluginManager,
) -> None:
    """Not a Mastra test: its error text (line 5665's) for the run that is not suspended."""
    run = await Workflow(id="wf").then(returning("s", {})).commit().create_run(plugin_manager=pm)
    await run.start({})
    with pytest.raises(RunStateError, match=r"^This workflow run was not suspended"):
        await run.resume(resume_data={})
