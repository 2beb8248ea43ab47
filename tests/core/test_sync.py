"""The sync twins, used from plain code with no running event loop."""

from __future__ import annotations

import inspect
from typing import Any

from stepstream import StepContext, Workflow, get_plugin_manager, step
from stepstream._loop import run_sync
from stepstream.storage.sqlite import SQLiteStorage


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


def test_create_run_sync_is_the_twin_of_create_run(tmp_path: Any) -> None:
    async_sig = inspect.signature(Workflow.create_run)
    assert inspect.signature(Workflow.create_run_sync).parameters == async_sig.parameters
    storage = SQLiteStorage(tmp_path / "runs.db")
    wf = Workflow(id="wf", storage=storage).then(shout).then(ask).commit()
    run = wf.create_run_sync("r-1", plugin_manager=_pm())
    assert wf.create_run_sync("r-1") is run  # live here: that same run
    assert storage_status(storage, "r-1") == "pending"  # stored at once, as create_run does
    assert run.start_sync({"text": "hi"}).status == "suspended"
    # Another process (another Workflow object on the same storage) loads the stored run.
    elsewhere = SQLiteStorage(tmp_path / "runs.db")
    other = Workflow(id="wf", storage=elsewhere).then(shout).then(ask).commit()
    loaded = other.create_run_sync("r-1", plugin_manager=_pm())
    assert loaded is not run and loaded.status == "suspended"
    assert loaded.resume_sync(step="ask", resume_data="yes").result == {"answer": "yes"}
    run_sync(storage.close())
    run_sync(elsewhere.close())


def storage_status(storage: SQLiteStorage, run_id: str) -> str | None:
    snapshot = run_sync(storage.load_run(run_id))
    return snapshot.status if snapshot is not None else None
