"""Cancel at any moment: before the first step, during every step kind, during a checkpoint,
while suspended, and after the end (a no-op that says so)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stepstream import Event, PluginManager, Step, StepContext, Workflow, step
from stepstream.agents import Agent
from stepstream.storage.sqlite import SQLiteStorage
from stepstream.testing import ModelServer, Recorder, StallReply

from ..conftest import assert_no_tasks_left
from .test_failures import assert_every_started_step_closed


@step(id="quick")
async def quick(ctx: StepContext[Any]) -> Any:
    return {"done": True}


async def _hang(ctx: StepContext[Any]) -> Any:
    await asyncio.Event().wait()  # until canceled


def _hanging(step_id: str = "hang") -> Step[Any, Any]:
    return Step(id=step_id, execute=_hang)


@pytest.mark.asyncio
async def test_cancel_before_the_first_step_ends_the_run_canceled(
    pm: PluginManager, recorder: Recorder
) -> None:
    """A cancel that lands before the run's task has run at all still ends the run, with
    `start` and `finish`, and `start()` returns the canceled result."""
    run = await Workflow(id="wf").then(quick).commit().create_run(plugin_manager=pm)
    starting = asyncio.create_task(run.start({}))
    await asyncio.sleep(0)  # the start's task is created, not yet run (ordering, not timing)
    canceled = await run.cancel()
    assert canceled is not None and canceled.status == "canceled"
    assert (await starting).status == "canceled"
    assert run.status == "canceled"
    assert recorder.types() == ["start", "finish"]
    assert canceled.steps == {}
    await assert_no_tasks_left()


@pytest.mark.asyncio
async def test_a_stream_canceled_before_its_first_step_ends(
    pm: PluginManager, recorder: Recorder
) -> None:
    run = await Workflow(id="wf").then(quick).commit().create_run(plugin_manager=pm)
    stream = run.stream({})
    async with stream:
        canceled = await run.cancel()
        events = [e.type async for e in stream]
    assert canceled is not None and canceled.status == "canceled"
    assert events == ["start", "finish"]
    assert (await stream.get_workflow_state()).status == "canceled"
    await assert_no_tasks_left()


@pytest.mark.asyncio
async def test_cancel_while_a_durable_run_is_being_claimed_stores_it_canceled(
    tmp_path: Path, pm: PluginManager
) -> None:
    store = SQLiteStorage(tmp_path / "runs.db")
    wf = Workflow(id="wf", storage=store).then(quick).commit()
    run = await wf.create_run(plugin_manager=pm)
    starting = asyncio.create_task(run.start({}))
    await asyncio.sleep(0)
    canceled = await run.cancel()
    assert canceled is not None and canceled.status == "canceled"
    assert (await starting).status == "canceled"
    stored = await store.load_run(run.run_id)
    assert stored is not None and stored.status == "canceled"
    await store.close()
    await assert_no_tasks_left()


def _kinds(model_server: ModelServer) -> dict[str, tuple[Callable[[Workflow], Workflow], str]]:
    """Each step kind, added to a workflow, and the id of the step-start to cancel at."""
    model_server.responder = lambda body: StallReply(["partial "])
    agent = Agent("Stalling Agent", "i", "mock-gpt", base_url=model_server.base_url, api_key="k")
    inner = Workflow(id="inner").then(_hanging()).commit()
    return {
        "plain": (lambda wf: wf.then(_hanging()), "hang"),
        "nested": (lambda wf: wf.then(inner), "inner.hang"),
        "agent": (
            lambda wf: wf.map({"prompt": {"value": "Hi"}}).then(step.from_agent(agent)),
            "Stalling Agent",
        ),
        "foreach": (lambda wf: wf.map(lambda ctx: [1, 2]).foreach(_hanging()), "hang"),
        "sleep": (lambda wf: wf.sleep(3600), "sleep_"),
        "parallel": (lambda wf: wf.parallel([_hanging("a"), _hanging("b")]), "b"),
        "loop": (lambda wf: wf.dountil(_hanging(), lambda ctx: True), "hang"),
        # A run in memory waits for its event in place (step-waiting, the run running).
        "event": (lambda wf: wf.wait_for_event("approved", _hanging()), "hang"),
    }


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "kind", ["plain", "nested", "agent", "foreach", "sleep", "parallel", "loop", "event"]
)
async def test_cancel_during_each_step_kind(
    kind: str, pm: PluginManager, recorder: Recorder, model_server: ModelServer
) -> None:
    build, target = _kinds(model_server)[kind]
    wf = build(Workflow(id="wf").then(quick)).commit()
    run = await wf.create_run(plugin_manager=pm)
    reached = asyncio.Event()

    def on_event(event: Event) -> None:
        opened = event.type in ("step-start", "step-waiting")  # a sleep opens with step-waiting
        if opened and (event.step_id or "").startswith(target):
            reached.set()

    run.watch(on_event, "watch-v2")
    starting = asyncio.create_task(run.start({}))
    await reached.wait()
    canceled = await run.cancel()
    assert canceled is not None and canceled.status == "canceled"
    assert canceled.error == "RunCanceledError: the run was canceled"
    assert (await starting).status == "canceled"
    assert recorder.types()[-1] == "finish"
    assert recorder.types().count("finish") == 1
    assert_every_started_step_closed(recorder.wire())
    assert canceled.steps["quick"].status == "success"
    await assert_no_tasks_left()


@pytest.mark.asyncio
async def test_cancel_while_a_durable_run_waits_for_an_event(
    pm: PluginManager, recorder: Recorder, tmp_path: Path
) -> None:
    """A durable run suspends at its wait for an event; canceling it then ends it."""
    wf = Workflow(id="wf").then(quick).wait_for_event("approved", _hanging()).commit()
    store = SQLiteStorage(tmp_path / "runs.db")
    run = await wf.create_run(plugin_manager=pm, storage=store)
    assert (await run.start({})).status == "suspended"
    canceled = await run.cancel()
    assert canceled is not None and canceled.status == "canceled"
    assert recorder.types()[-1] == "finish"
    with pytest.raises(Exception, match="has ended"):
        await run.send_event("approved", {})
    assert (await wf.load_run(run.run_id, storage=store)).status == "canceled"
    await store.close()


@pytest.mark.asyncio
async def test_cancel_after_the_end_is_a_no_op_that_says_so(
    pm: PluginManager, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    run = await Workflow(id="wf").then(quick).commit().create_run(plugin_manager=pm)
    done = await run.start({})
    before = recorder.types()
    with caplog.at_level(logging.INFO, logger="stepstream"):
        again = await run.cancel()
    assert again is done and again.status == "success"
    assert run.status == "success"
    assert recorder.types() == before  # nothing more was emitted
    assert f"run {run.run_id} has ended (success); cancel() does nothing" in caplog.text


@pytest.mark.asyncio
async def test_cancel_of_a_run_never_started_says_so(
    pm: PluginManager, caplog: pytest.LogCaptureFixture
) -> None:
    run = await Workflow(id="wf").then(quick).commit().create_run(plugin_manager=pm)
    with caplog.at_level(logging.INFO, logger="stepstream"):
        assert await run.cancel() is None
    assert "has not started; cancel() does nothing" in caplog.text
    assert run.status == "pending"
