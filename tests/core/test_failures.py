"""Bad input gets a clear error and loses nothing: each failure mode in stream and state."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest
from pydantic import BaseModel

from stepstream import (
    PluginHookError,
    PluginManager,
    Step,
    StepContext,
    Workflow,
    get_plugin_manager,
    hookimpl,
    step,
)
from stepstream.testing import Recorder

from ..conftest import assert_no_tasks_left


class Num(BaseModel):
    value: int


@step(id="inc")
async def inc(ctx: StepContext[Num]) -> Num:
    return Num(value=ctx.input_data.value + 1)


@step(id="after")
async def after(ctx: StepContext[Num]) -> Num:
    return ctx.input_data


def _types(events: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [(e["type"], (e.get("payload") or {}).get("id")) for e in events]


async def _stream(wf: Workflow, pm: PluginManager, input_data: Any) -> tuple[list[Any], Any]:
    run = await wf.create_run(plugin_manager=pm)
    stream = run.stream(input_data=input_data)
    events = [e.to_wire() async for e in stream]
    return events, await stream.get_workflow_state()


@pytest.mark.asyncio
async def test_invalid_input_fails_before_any_step(pm: PluginManager, recorder: Recorder) -> None:
    wf = Workflow(id="wf", input_schema=Num).then(inc).commit()
    events, result = await _stream(wf, pm, {"value": "seven"})
    assert _types(events) == [("start", None), ("finish", None)]
    assert result.status == "failed"
    assert result.error.startswith("InputValidationError: workflow 'wf' input is invalid")
    assert "value: Input should be a valid integer" in result.error
    assert result.steps == {}
    assert result.to_wire()["steps"] == {"input": {"value": "seven"}}
    assert recorder.wire() == events
    await assert_no_tasks_left()


@pytest.mark.asyncio
async def test_step_raising_fails_the_run_and_stops_later_steps(
    pm: PluginManager, recorder: Recorder
) -> None:
    @step(id="boom")
    async def boom(ctx: StepContext[Num]) -> Num:
        raise ValueError(f"cannot handle {ctx.input_data.value}")

    wf = Workflow(id="wf", input_schema=Num).then(inc).then(boom).then(after).commit()
    events, result = await _stream(wf, pm, {"value": 1})
    assert _types(events) == [
        ("start", None),
        ("step-start", "inc"),
        ("step-result", "inc"),
        ("step-finish", "inc"),
        ("step-start", "boom"),
        ("step-result", "boom"),
        ("step-finish", "boom"),
        ("finish", None),
    ]
    failed = events[5]["payload"]
    assert failed["status"] == "failed"
    assert failed["error"] == "ValueError: cannot handle 2"
    assert list(failed) == ["id", "status", "error", "endedAt"]
    assert result.status == "failed"
    assert result.error == "ValueError: cannot handle 2"
    assert "Traceback" in (result.steps["boom"].error_detail or "")
    assert "error_detail" not in str(result.to_wire())
    assert result.steps["inc"].output == {"value": 2}
    assert "after" not in result.steps
    errors = [c for c in recorder.calls if c[0] == "on_step_error"]
    assert len(errors) == 1 and isinstance(errors[0][1]["error"], ValueError)
    await assert_no_tasks_left()


@pytest.mark.asyncio
async def test_invalid_step_output_fails_that_step(pm: PluginManager) -> None:
    @step(id="liar", output_schema=Num)
    async def liar(ctx: StepContext[Any]) -> Any:
        return {"value": "not a number"}

    wf = Workflow(id="wf").then(liar).then(after).commit()
    events, result = await _stream(wf, pm, {"value": 1})
    assert [e["type"] for e in events] == [
        "start",
        "step-start",
        "step-result",
        "step-finish",
        "finish",
    ]
    assert events[2]["payload"]["status"] == "failed"
    assert events[2]["payload"]["error"].startswith(
        "OutputValidationError: step 'liar' returned output that does not match Num: value:"
    )
    assert result.status == "failed"
    assert result.error == events[2]["payload"]["error"]
    await assert_no_tasks_left()


@pytest.mark.asyncio
async def test_step_input_not_matching_its_schema_fails_that_step(pm: PluginManager) -> None:
    @step(id="make")
    async def make(ctx: StepContext[Any]) -> Any:
        return {"other": 1}

    wf = Workflow(id="wf").then(make).then(inc).commit()
    events, result = await _stream(wf, pm, None)
    assert events[-3]["payload"]["id"] == "inc"
    assert events[-3]["payload"]["error"].startswith(
        "InputValidationError: step 'inc' input does not match Num: value: Field required"
    )
    assert result.status == "failed"


class Exploding:
    """A plugin that raises in every observer hook."""

    @hookimpl
    def on_event(self, event: Any) -> None:
        raise RuntimeError(f"on_event exploded at {event.type}")

    @hookimpl
    def before_workflow_run(self) -> None:
        raise RuntimeError("before_workflow_run exploded")

    @hookimpl
    def after_workflow_run(self) -> None:
        raise RuntimeError("after_workflow_run exploded")

    @hookimpl
    def before_step_run(self) -> None:
        raise RuntimeError("before_step_run exploded")

    @hookimpl
    def after_step_run(self) -> None:
        raise RuntimeError("after_step_run exploded")

    @hookimpl
    def on_step_error(self) -> None:
        raise RuntimeError("on_step_error exploded")

    @hookimpl
    def wrap_step_run(self) -> None:
        raise RuntimeError("wrap_step_run exploded")

    @hookimpl
    def on_plugin_error(self) -> None:
        raise RuntimeError("on_plugin_error exploded")


@pytest.mark.asyncio
async def test_plugin_raising_in_every_hook_never_stops_the_run(
    recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    pm = get_plugin_manager(
        load_entrypoints=False, plugins=[("exploding", Exploding()), ("recorder", recorder)]
    )
    wf = Workflow(id="wf", input_schema=Num).then(inc).then(after).commit()
    events, result = await _stream(wf, pm, {"value": 1})

    assert result.status == "success"
    assert result.result == {"value": 2}
    workflow_events = [e for e in events if e["type"] != "plugin-error"]
    assert _types(workflow_events) == [
        ("start", None),
        ("step-start", "inc"),
        ("step-result", "inc"),
        ("step-finish", "inc"),
        ("step-start", "after"),
        ("step-result", "after"),
        ("step-finish", "after"),
        ("finish", None),
    ]
    plugin_errors = [e["payload"] for e in events if e["type"] == "plugin-error"]
    assert {p["plugin"] for p in plugin_errors} == {"exploding"}
    hooks = {p["hook"] for p in plugin_errors}
    assert {"on_event", "before_workflow_run", "before_step_run", "after_step_run"} <= hooks
    assert "wrap_step_run" in hooks
    assert plugin_errors[0]["error"].startswith("RuntimeError: ")
    # Every error is in the result, including those raised while reporting errors.
    assert len(result.plugin_errors) >= len(plugin_errors)
    # The other plugin saw exactly what the stream yielded.
    assert recorder.wire() == events
    assert pm.error_count == len(result.plugin_errors)
    assert "plugin 'exploding' raised in hook 'on_event'" in caplog.text
    await assert_no_tasks_left()


@pytest.mark.asyncio
async def test_strict_mode_reraises_plugin_errors() -> None:
    pm = get_plugin_manager(load_entrypoints=False, strict=True, plugins=[Exploding()])
    wf = Workflow(id="wf", input_schema=Num).then(inc).commit()

    run = await wf.create_run(plugin_manager=pm)
    with pytest.raises(PluginHookError, match="raised in hook 'before_workflow_run'") as info:
        await run.start({"value": 1})
    assert isinstance(info.value.__cause__, RuntimeError)

    run = await wf.create_run(plugin_manager=pm)
    with pytest.raises(PluginHookError):
        async for _ in run.stream(input_data={"value": 1}):
            pass
    await assert_no_tasks_left()


@pytest.mark.asyncio
async def test_strict_mode_stream_error_is_not_also_logged_as_never_retrieved() -> None:
    pm = get_plugin_manager(load_entrypoints=False, strict=True, plugins=[Exploding()])
    wf = Workflow(id="wf", input_schema=Num).then(inc).commit()
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    try:
        run = await wf.create_run(plugin_manager=pm)
        with pytest.raises(PluginHookError):
            async for _ in run.stream(input_data={"value": 1}):
                pass
        assert run._task is not None
        await asyncio.wait([run._task])
        del run  # asyncio reports an unretrieved task exception when the task is collected
        gc.collect()
    finally:
        loop.set_exception_handler(None)
    assert [c["message"] for c in reported] == []


def assert_every_started_step_closed(events: list[dict[str, Any]]) -> None:
    """Each step-start (or a sleep's step-waiting) is followed, for that id, by exactly one
    step-result and step-finish."""
    open_steps: list[str] = []
    for e in events:
        step_id = (e.get("payload") or {}).get("id")
        if e["type"] in ("step-start", "step-waiting"):
            open_steps.append(step_id)
        elif e["type"] == "step-result":
            assert step_id in open_steps
        elif e["type"] == "step-finish":
            open_steps.remove(step_id)
    assert open_steps == []


def _long_workflow(n: int) -> Workflow:
    async def echo(ctx: StepContext[Any]) -> Any:
        return ctx.input_data

    wf = Workflow(id="long")
    for i in range(n):
        wf.then(Step(id=f"s{i}", execute=echo))
    return wf.commit()


@pytest.mark.asyncio
async def test_consumer_breaking_out_cancels_the_run_and_loses_nothing(
    pm: PluginManager, recorder: Recorder
) -> None:
    run = await _long_workflow(50).create_run(plugin_manager=pm)
    stream = run.stream(input_data={"x": 1}, buffer_size=4)
    seen = []
    async for event in stream:
        seen.append(event)
        if len(seen) == 5:
            break
    result = await stream.get_workflow_state()

    assert result.status == "canceled"
    assert result.error == "RunCanceledError: the run was canceled"
    # The stream's consumer got a prefix; every plugin still got the whole run, ending in finish.
    assert [e.seq for e in seen] == [0, 1, 2, 3, 4]
    assert recorder.events[:5] == seen
    assert [e.seq for e in recorder.events] == list(range(len(recorder.events)))
    assert recorder.types()[-1] == "finish"
    assert_every_started_step_closed(recorder.wire())
    assert run.status == "canceled"
    assert pm.get_plugin("stream").open_channels == 0
    await assert_no_tasks_left()


@pytest.mark.asyncio
@pytest.mark.parametrize("stop_after", range(1, 9))
async def test_cancel_at_any_event_closes_every_started_step(
    pm: PluginManager, recorder: Recorder, stop_after: int
) -> None:
    """Wherever the consumer leaves (buffer of 1: the run waits after every event), the
    steps already started still get their step-result and step-finish, then finish."""
    run = await _long_workflow(3).create_run(plugin_manager=pm)
    stream = run.stream(input_data={}, buffer_size=1)
    async for event in stream:
        if event.seq + 1 >= stop_after:
            break
    result = await stream.get_workflow_state()
    assert result.status in ("canceled", "success")
    assert_every_started_step_closed(recorder.wire())
    assert recorder.types()[-1] == "finish"
    for record in result.steps.values():
        assert record.status in ("success", "canceled")
    await assert_no_tasks_left()


@pytest.mark.asyncio
async def test_consumer_leaving_the_context_manager_cancels_the_run(pm: PluginManager) -> None:
    run = await _long_workflow(50).create_run(plugin_manager=pm)
    async with run.stream(input_data={}, buffer_size=2) as stream:
        first = await anext(aiter(stream))
        assert first.type == "start"
    result = await run.wait()
    assert result.status == "canceled"
    await assert_no_tasks_left()


@pytest.mark.asyncio
async def test_consumer_raising_cancels_the_run(pm: PluginManager, recorder: Recorder) -> None:
    run = await _long_workflow(20).create_run(plugin_manager=pm)
    stream = run.stream(input_data={}, buffer_size=2)

    async def consume() -> None:
        async for event in stream:
            if event.type == "step-result":
                raise KeyError("consumer bug")

    with pytest.raises(KeyError):
        await consume()
    result = await stream.get_workflow_state()
    assert result.status == "canceled"
    assert recorder.types()[-1] == "finish"
    await assert_no_tasks_left()


@pytest.mark.asyncio
async def test_canceling_a_running_step_is_seen_by_the_step(
    pm: PluginManager, recorder: Recorder
) -> None:
    started = asyncio.Event()
    seen_cancel: list[bool] = []

    @step(id="forever")
    async def forever(ctx: StepContext[Any]) -> Any:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen_cancel.append(ctx.is_canceled)
            raise

    run = await Workflow(id="wf").then(forever).commit().create_run(plugin_manager=pm)
    task = asyncio.create_task(run.start({}))
    await started.wait()
    result = await run.cancel()
    assert result is not None and result.status == "canceled"
    assert (await task).status == "canceled"
    assert seen_cancel == [True]
    assert recorder.types() == ["start", "step-start", "step-result", "step-finish", "finish"]
    assert recorder.events[2].to_wire()["payload"]["status"] == "canceled"
    await assert_no_tasks_left()


@pytest.mark.asyncio
async def test_outer_cancellation_propagates(pm: PluginManager) -> None:
    """A caller's timeout cancels the run and still raises for the caller."""
    started = asyncio.Event()

    @step(id="forever")
    async def forever(ctx: StepContext[Any]) -> Any:
        started.set()
        await asyncio.Event().wait()

    run = await Workflow(id="wf").then(forever).commit().create_run(plugin_manager=pm)
    task = asyncio.create_task(run.start({}))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await assert_no_tasks_left()
