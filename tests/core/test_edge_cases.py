"""Edge cases found in review: cancellation anywhere, isolation of awaited plugin work,
event order guarantees, and runs used past their end."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import BaseModel

from stepstream import (
    Event,
    PluginError,
    PluginManager,
    RunStateError,
    StepContext,
    Workflow,
    get_plugin_manager,
    hookimpl,
    step,
)
from stepstream.testing import Recorder

from ..conftest import assert_no_tasks_left


@step(id="chatty")
async def chatty(ctx: StepContext[Any]) -> Any:
    for i in range(1_000):
        await ctx.write({"i": i})
    return {"done": True}


@pytest.mark.asyncio
async def test_consumer_can_cancel_while_the_buffer_is_full(
    pm: PluginManager, recorder: Recorder
) -> None:
    run = await Workflow(id="wf").then(chatty).commit().create_run(plugin_manager=pm)
    stream = run.stream(input_data={}, buffer_size=4)
    statuses = []
    async for event in stream:
        if event.type == "step-output" and event.output["i"] == 3:
            result = await run.cancel()  # the run is waiting for this very consumer
            assert result is not None
            statuses.append(result.status)
    assert statuses == ["canceled"]
    assert recorder.types()[-3:] == ["step-result", "step-finish", "finish"]
    await assert_no_tasks_left()


@pytest.mark.asyncio
async def test_cancel_before_the_first_step_still_finishes(pm: PluginManager) -> None:
    run = await Workflow(id="wf").then(chatty).commit().create_run(plugin_manager=pm)
    stream = run.stream(input_data={}, buffer_size=1)
    events = aiter(stream)
    assert (await anext(events)).type == "start"
    result = await run.cancel()
    assert result is not None and result.status == "canceled"
    assert run.status == "canceled"
    assert [e.type async for e in events][-1] == "finish"
    assert (await stream.get_workflow_state()).status == "canceled"


@pytest.mark.asyncio
async def test_a_callers_timeout_cancels_the_run_with_a_result(
    pm: PluginManager, recorder: Recorder
) -> None:
    started = asyncio.Event()

    @step(id="slow")
    async def slow(ctx: StepContext[Any]) -> Any:
        started.set()
        await asyncio.Event().wait()

    run = await Workflow(id="wf").then(slow).commit().create_run(plugin_manager=pm)
    task = asyncio.create_task(run.start({}))
    await started.wait()
    task.cancel()  # what asyncio.wait_for / asyncio.timeout do to their caller
    with pytest.raises(asyncio.CancelledError):
        await task
    assert run.status == "canceled" and run.result is not None
    assert recorder.types() == ["start", "step-start", "step-result", "step-finish", "finish"]
    await assert_no_tasks_left()


class Reason(BaseModel):
    reason: str


@pytest.mark.asyncio
async def test_invalid_suspend_payload_fails_the_step(pm: PluginManager) -> None:
    @step(id="ask", suspend_schema=Reason)
    async def ask(ctx: StepContext[Any]) -> Any:
        ctx.suspend({"wrong": 1})

    run = await Workflow(id="wf").then(ask).commit().create_run(plugin_manager=pm)
    result = await run.start({})
    assert result.status == "failed"
    assert result.error == (
        "ValidationError: step 'ask' suspend payload does not match Reason: reason: Field required"
    )


@pytest.mark.asyncio
@pytest.mark.parametrize("when", ["step-start", "step-result", "finish"])
async def test_an_async_watcher_raising_is_isolated(pm: PluginManager, when: str) -> None:
    @step(id="fine")
    async def fine(ctx: StepContext[Any]) -> Any:
        return {"ok": True}

    run = await Workflow(id="wf").then(fine).commit().create_run(plugin_manager=pm)

    async def watcher(event: Event) -> None:
        if event.type == when:
            raise RuntimeError("watcher bug")

    run.watch(watcher, "watch-v2")
    result = await run.start({})
    assert result.status == "success" and result.result == {"ok": True}
    assert [(e.hook, e.error) for e in result.plugin_errors] == [
        ("on_event", "RuntimeError: watcher bug")
    ]


def test_observer_hooks_cannot_be_wrappers() -> None:
    class Wrapping:
        @hookimpl(wrapper=True)
        def on_event(self, event: Event) -> Any:
            return (yield)

    with pytest.raises(PluginError, match="on_event is an observer hook and cannot be a wrapper"):
        get_plugin_manager(load_entrypoints=False, plugins=[("w", Wrapping())])


@pytest.mark.asyncio
async def test_a_plugin_failing_on_every_event_is_reported_once_per_failure() -> None:
    class Failing:
        @hookimpl
        def on_event(self, event: Event) -> None:
            if event.type != "plugin-error":
                raise RuntimeError("always")

    recorder = Recorder()
    pm = get_plugin_manager(load_entrypoints=False, plugins=[Failing(), recorder])
    wf = Workflow(id="wf")
    for i in range(10):
        wf.then(chatty.__class__(id=f"s{i}", execute=lambda ctx: ctx.input_data))
    await (await wf.commit().create_run(plugin_manager=pm)).start({})
    types = recorder.types()
    real = [t for t in types if t != "plugin-error"]
    # One report per failure (the failure on `finish` is recorded, not streamed).
    assert types.count("plugin-error") == len(real) - 1
    assert types[0] == "start" and types[-1] == "finish"


@pytest.mark.asyncio
async def test_start_is_first_even_when_before_workflow_run_raises(recorder: Recorder) -> None:
    class Early:
        @hookimpl
        def before_workflow_run(self) -> None:
            raise RuntimeError("early")

    pm = get_plugin_manager(load_entrypoints=False, plugins=[Early(), recorder])
    await (await Workflow(id="wf").then(chatty).commit().create_run(plugin_manager=pm)).start({})
    assert recorder.types()[:2] == ["start", "plugin-error"]
    assert [e.seq for e in recorder.events] == list(range(len(recorder.events)))


@pytest.mark.asyncio
async def test_parallel_step_starts_come_first_even_for_instant_steps(
    pm: PluginManager, recorder: Recorder
) -> None:
    def instant(name: str) -> Any:
        @step(id=name)
        async def body(ctx: StepContext[Any]) -> Any:
            return {name: True}

        return body

    wf = Workflow(id="wf").parallel([instant("a"), instant("b"), instant("c")]).commit()
    await (await wf.create_run(plugin_manager=pm)).start({})
    kinds = [(e.type, getattr(e, "step_id", None)) for e in recorder.events]
    assert kinds[1:4] == [("step-start", "a"), ("step-start", "b"), ("step-start", "c")]


@pytest.mark.asyncio
async def test_a_finished_run_cannot_be_streamed_again(pm: PluginManager) -> None:
    run = await Workflow(id="wf").then(chatty).commit().create_run(plugin_manager=pm)
    await run.start({})
    with pytest.raises(RunStateError, match=r"has ended \(success\)"):
        run.stream()


@pytest.mark.asyncio
async def test_suspend_inside_foreach_fails_clearly(pm: PluginManager) -> None:
    @step(id="item")
    async def item(ctx: StepContext[Any]) -> Any:
        ctx.suspend({"why": "per item"})

    run = await Workflow(id="wf").foreach(item).commit().create_run(plugin_manager=pm)
    result = await run.start([{"n": 1}])
    assert result.status == "failed"
    assert result.error.startswith("StepExecutionError: step 'item' suspended inside foreach")


@pytest.mark.asyncio
async def test_state_after_canceling_a_suspended_run_is_canceled(
    pm: PluginManager, recorder: Recorder
) -> None:
    @step(id="wait")
    async def wait(ctx: StepContext[Any]) -> Any:
        ctx.suspend({"why": "human"})

    run = await Workflow(id="wf").then(wait).commit().create_run(plugin_manager=pm)
    stream = run.stream(input_data={}, close_on_suspend=True)
    assert [e.type async for e in stream][-1] == "step-suspended"
    await run.cancel()
    assert (await stream.get_workflow_state()).status == "canceled"
    assert ("after_workflow_run", {"status": "canceled"}) in recorder.calls
