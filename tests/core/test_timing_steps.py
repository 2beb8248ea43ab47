"""sleep, sleep_until, wait_for_event / send_event, and per-step retries and timeouts."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from stepstream import RunStateError, StepContext, Workflow, WorkflowDefinitionError, step
from stepstream.storage import Checkpoint
from stepstream.storage.sqlite import SQLiteStorage
from stepstream.testing import Recorder

from ..conftest import PluginManager


@step(id="first")
async def first(ctx: StepContext[Any]) -> Any:
    return {"n": 1}


@step(id="after")
async def after(ctx: StepContext[Any]) -> Any:
    return {"after": ctx.input_data, "event": ctx.resume_data}


@pytest.mark.asyncio
async def test_sleep_is_a_visible_step_passing_its_input_through(
    pm: PluginManager, recorder: Recorder
) -> None:
    wf = Workflow(id="wf").then(first).sleep(0).then(after).commit()
    result = await (await wf.create_run(plugin_manager=pm)).start({})
    assert result.result == {"after": {"n": 1}, "event": None}
    sleep_ids = [e.step_id for e in recorder.events if e.type in ("step-start", "step-waiting")]
    assert sleep_ids[1].startswith("sleep_") and len(sleep_ids) == 3


@pytest.mark.asyncio
async def test_sleep_until_a_past_time_does_not_wait(pm: PluginManager) -> None:
    past = datetime.now(UTC) - timedelta(days=1)
    wf = Workflow(id="wf").then(first).sleep_until(lambda ctx: past).then(after).commit()
    run = await wf.create_run(plugin_manager=pm)
    assert (await asyncio.wait_for(run.start({}), 30)).status == "success"


@pytest.mark.asyncio
async def test_a_sleeping_run_is_cancelable(pm: PluginManager) -> None:
    wf = Workflow(id="wf").then(first).sleep(3600).then(after).commit()
    run = await wf.create_run(plugin_manager=pm)
    stream = run.stream(input_data={})
    async for event in stream:
        if event.type == "step-waiting" and event.step_id.startswith("sleep_"):
            break
    result = await stream.get_workflow_state()
    assert result.status == "canceled"


@pytest.mark.asyncio
async def test_a_recovered_sleep_counts_from_its_stored_start(tmp_path: Path) -> None:
    sleeping = asyncio.Event()

    class Watching(SQLiteStorage):
        async def save_checkpoint(self, checkpoint: Checkpoint) -> None:
            await super().save_checkpoint(checkpoint)
            if any(r.path[0].startswith("sleep_") for r in checkpoint.records):
                sleeping.set()  # the sleep's start is stored

    store = Watching(tmp_path / "runs.db")
    wf = Workflow(id="wf", storage=store).then(first).sleep(3600).then(after).commit()
    run = await wf.create_run()
    task = asyncio.create_task(run.start({}))
    await sleeping.wait()
    snapshot = await store.load_run(run.run_id)
    assert snapshot is not None and snapshot.status == "running"
    [sleep_id] = [k for k in snapshot.state["steps"] if k.startswith("sleep_")]
    await run.abandon()  # the process "stops" here; its stored state says the sleep began
    await asyncio.gather(task, return_exceptions=True)
    # Pretend the sleep began long ago: the recovered run must not sleep again.
    with sqlite3.connect(tmp_path / "runs.db") as conn:
        [(data,)] = conn.execute("SELECT data FROM stepstream_records WHERE key = ?", (sleep_id,))
        record = json.loads(data)
        record["started_at"] -= 3600 * 1000
        conn.execute(
            "UPDATE stepstream_records SET data = ? WHERE key = ?", (json.dumps(record), sleep_id)
        )
    again = await wf.load_run(run.run_id)
    assert again.status == "interrupted"
    result = await asyncio.wait_for(again.resume(), 30)
    assert result.status == "success" and result.result == {"after": {"n": 1}, "event": None}
    await store.close()


@pytest.mark.asyncio
async def test_wait_for_event_waits_in_place_until_the_event_is_sent(
    pm: PluginManager, recorder: Recorder
) -> None:
    wf = Workflow(id="wf").then(first).wait_for_event("approved", after).commit()
    run = await wf.create_run(plugin_manager=pm)
    sent: list[Any] = []

    async def on_event(event: Any) -> None:
        if event.type == "step-waiting":
            sent.append(await run.send_event("approved", {"by": "ada"}))  # woken in place

    run.watch(on_event, "watch-v2")
    done = await run.start({})
    assert sent == [None]
    assert done.status == "success"
    assert done.result == {"after": {"n": 1}, "event": {"by": "ada"}}
    with pytest.raises(RunStateError, match="has ended"):
        await run.send_event("approved", {})


@pytest.mark.asyncio
async def test_an_event_sent_early_is_kept_until_the_step_is_reached(pm: PluginManager) -> None:
    gate, started = asyncio.Event(), asyncio.Event()

    @step(id="slow")
    async def slow(ctx: StepContext[Any]) -> Any:
        started.set()
        await gate.wait()
        return {"n": 2}

    wf = Workflow(id="wf").then(slow).wait_for_event("go", after).commit()
    run = await wf.create_run(plugin_manager=pm)
    task = asyncio.create_task(run.start({}))
    await started.wait()
    assert run.status == "running"
    assert await run.send_event("go", "early") is None
    gate.set()
    result = await task
    assert result.status == "success" and result.result == {"after": {"n": 2}, "event": "early"}


@pytest.mark.asyncio
async def test_retries_until_success_are_counted(pm: PluginManager, recorder: Recorder) -> None:
    calls = 0

    @step(id="flaky", retries=3, retry_delay=0)
    async def flaky(ctx: StepContext[Any]) -> Any:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionError(f"try {calls}")
        return {"ok": calls}

    result = await (
        await Workflow(id="wf").then(flaky).commit().create_run(plugin_manager=pm)
    ).start({})
    assert result.status == "success" and result.result == {"ok": 3}
    assert result.steps["flaky"].attempts == 3
    assert "attempts" not in str(result.to_wire())  # Mastra's shape stays as it is
    assert [e.type for e in recorder.events].count("step-start") == 1


@pytest.mark.asyncio
async def test_retries_exhausted_fail_with_the_last_error(pm: PluginManager) -> None:
    @step(id="broken", retries=2, retry_delay=0)
    def broken(ctx: StepContext[Any]) -> Any:
        raise ValueError("always")

    result = await (
        await Workflow(id="wf").then(broken).commit().create_run(plugin_manager=pm)
    ).start({})
    assert result.status == "failed" and result.error == "ValueError: always"
    assert result.steps["broken"].attempts == 3


@pytest.mark.asyncio
async def test_timeout_fails_each_attempt_then_the_step(pm: PluginManager) -> None:
    @step(id="stuck", timeout=0.05, retries=1, retry_delay=0)
    async def stuck(ctx: StepContext[Any]) -> Any:
        await asyncio.Event().wait()

    result = await (
        await Workflow(id="wf").then(stuck).commit().create_run(plugin_manager=pm)
    ).start({})
    assert result.status == "failed"
    assert result.error == "StepTimeoutError: step 'stuck' took longer than its timeout of 0.05s"
    assert result.steps["stuck"].attempts == 2


def test_bad_retry_settings_are_rejected() -> None:
    with pytest.raises(WorkflowDefinitionError, match="retries and retry_delay must be >= 0"):
        step(id="x", retries=-1)(lambda ctx: None)
    with pytest.raises(WorkflowDefinitionError, match="sleep"):
        Workflow(id="wf").sleep(-1)
