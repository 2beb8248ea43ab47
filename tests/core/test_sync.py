"""The sync twins, used from plain code with no running event loop."""

from __future__ import annotations

from typing import Any

from stepstream import StepContext, Workflow, get_plugin_manager, step


@step(id="shout")
def shout(ctx: StepContext[Any]) -> Any:
    return {"text": ctx.input_data["text"].upper()}


@step(id="ask")
async def ask(ctx: StepContext[Any]) -> Any:
    if ctx.resume_data is None:
        ctx.suspend({"question": "ok?"})
    return {"answer": ctx.resume_data}


def _pm() -> Any:
    return get_plugin_manager(load_entrypoints=False)


def test_start_sync() -> None:
    run = Workflow(id="wf").then(shout).commit().create_run_sync(plugin_manager=_pm())
    result = run.start_sync({"text": "hi"})
    assert result.status == "success" and result.result == {"text": "HI"}


def test_stream_sync_then_resume_sync() -> None:
    run = Workflow(id="wf").then(shout).then(ask).commit().create_run_sync(plugin_manager=_pm())
    with run.stream_sync({"text": "hi"}) as stream:
        types = [event.type for event in stream]
        assert stream.get_workflow_state().status == "suspended"
    assert types == [
        "start",
        "step-start",
        "step-result",
        "step-finish",
        "step-start",
        "step-suspended",
    ]
    result = run.resume_sync(step="ask", resume_data="yes")
    assert result.result == {"answer": "yes"}


def test_stream_sync_left_early_cancels() -> None:
    wf = Workflow(id="wf").then(shout).then(ask).commit()
    run = wf.create_run_sync(plugin_manager=_pm())
    stream = run.stream_sync({"text": "hi"}, buffer_size=1)
    for event in stream:
        if event.type == "step-start":
            break
    stream.close()
    assert run.status == "canceled"
    assert run.cancel_sync() is not None
