"""Waiting steps: ``wait_for_event`` in place (a run in memory) or suspended (a durable run),
its timeout, and how sleeps and waits look in the stream and in ``watch`` records."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from stepstream import (
    PluginManager,
    RunStateError,
    StepContext,
    Workflow,
    WorkflowDefinitionError,
    step,
)
from stepstream.events import StepResultEvent, event_from_wire
from stepstream.storage.sqlite import SQLiteStorage
from stepstream.testing import Recorder


@step(id="first")
async def first(ctx: StepContext[Any]) -> Any:
    return {"n": 1}


@step(id="after")
async def after(ctx: StepContext[Any]) -> Any:
    return {"after": ctx.input_data, "event": ctx.resume_data}


def _waiting(**options: Any) -> Workflow:
    return Workflow(id="wf").then(first).wait_for_event("approved", after, **options).commit()


@pytest.mark.asyncio
async def test_a_wait_past_its_timeout_fails_the_step_with_its_events(
    pm: PluginManager, recorder: Recorder
) -> None:
    run = await _waiting(timeout=0.01).create_run(plugin_manager=pm)
    result = await run.start({})
    assert result.status == "failed"
    assert result.error is not None and "for event 'approved'" in result.error
    tail = [(e["type"], e["payload"].get("id")) for e in recorder.wire()][-4:]
    assert tail == [
        ("step-waiting", "after"),
        ("step-result", "after"),
        ("step-finish", "after"),
        ("finish", None),
    ]
    failed = recorder.wire()[-3]["payload"]
    assert failed["status"] == "failed"
    assert failed["error"] == (
        "StepTimeoutError: Timeout waiting for event: step 'after' waited longer than its "
        "timeout of 0.01s for event 'approved'"
    )
    with pytest.raises(RunStateError, match="has ended"):
        await run.send_event("approved", {})  # too late: the run has failed


@pytest.mark.asyncio
async def test_an_event_within_the_timeout_runs_the_step(pm: PluginManager) -> None:
    run = await _waiting(timeout=60).create_run(plugin_manager=pm)
    statuses: list[str] = []

    async def on_event(event: Any) -> None:
        if event.type == "step-waiting":
            statuses.append(run.status)
            await run.send_event("approved", "yes")

    run.watch(on_event, "watch-v2")
    result = await run.start({})
    assert statuses == ["running"]
    assert result.status == "success" and result.result == {"after": {"n": 1}, "event": "yes"}
    record = result.steps["after"]
    assert record.resume_payload == "yes" and record.resumed_at is not None
    assert record.suspend_payload is None and record.suspended_at is None


@pytest.mark.asyncio
async def test_an_event_sent_before_the_wait_still_streams_waiting_then_start(
    pm: PluginManager, recorder: Recorder
) -> None:
    run = await _waiting().create_run(plugin_manager=pm)
    assert await run.send_event("approved", "early") is None  # kept until the step waits
    result = await run.start({})
    assert result.result == {"after": {"n": 1}, "event": "early"}
    opened = [e["type"] for e in recorder.wire() if e["payload"].get("id") == "after"]
    assert opened == ["step-waiting", "step-start", "step-result", "step-finish"]


@pytest.mark.asyncio
async def test_resume_of_a_step_waiting_in_place_gives_it_the_data(pm: PluginManager) -> None:
    inner = Workflow(id="inner").wait_for_event("approved", after).commit()
    wf = Workflow(id="wf").then(first).then(inner).commit()
    run = await wf.create_run(plugin_manager=pm)
    resuming: list[asyncio.Task[Any]] = []

    def on_event(event: Any) -> None:
        if event.type == "step-waiting":  # named by a path of objects and ids, as for suspend
            resume = run.resume(step=[inner, "after"], resume_data="by resume")
            resuming.append(asyncio.ensure_future(resume))  # it returns at the run's end

    run.watch(on_event, "watch-v2")
    result = await run.start({})
    assert result.status == "success"
    assert result.result == {"after": {"n": 1}, "event": "by resume"}
    assert [await r for r in resuming] == [result]


@pytest.mark.asyncio
async def test_watch_records_show_a_waiting_run_as_mastra_does(pm: PluginManager) -> None:
    wf = Workflow(id="wf").then(first).sleep(0).wait_for_event("approved", after).commit()
    run = await wf.create_run(plugin_manager=pm)
    records: list[dict[str, Any]] = []

    async def on_record(record: dict[str, Any]) -> None:
        records.append(record)
        current = record["payload"].get("currentStep") or {}
        if current.get("id") == "after" and current.get("status") == "waiting":
            await run.send_event("approved", {"ok": True})

    run.watch(on_record)
    assert (await run.start({})).status == "success"
    seen = [
        (r["payload"]["currentStep"]["id"][:6], r["payload"]["currentStep"]["status"],
         r["payload"]["workflowState"]["status"])
        for r in records
        if "currentStep" in r["payload"]
    ]  # fmt: skip
    assert seen == [
        ("first", "running", "running"),
        ("first", "success", "running"),
        ("sleep_", "waiting", "waiting"),
        ("sleep_", "success", "running"),
        ("after", "waiting", "waiting"),
        ("after", "running", "running"),
        ("after", "success", "running"),
    ]
    waiting = next(r for r in records if r["payload"]["workflowState"]["status"] == "waiting")
    [sleep_id] = [k for k in waiting["payload"]["workflowState"]["steps"] if k.startswith("sleep_")]
    assert waiting["payload"]["workflowState"]["steps"][sleep_id]["status"] == "waiting"
    assert records[-1]["payload"]["workflowState"]["status"] == "success"


@pytest.mark.asyncio
async def test_a_durable_run_suspends_at_its_wait_and_a_loaded_copy_continues_it(
    pm: PluginManager, tmp_path: Path
) -> None:
    store = SQLiteStorage(tmp_path / "runs.db")
    wf = _waiting()
    run = await wf.create_run(plugin_manager=pm, storage=store)
    waiting = await run.start({})  # nothing holds a durable run while it waits
    assert waiting.status == "suspended" and waiting.suspended == [["after"]]
    assert waiting.steps["after"].suspend_payload == {"event": "approved"}
    # As another process would: a copy loaded from storage gets the event.
    loaded = await wf.load_run(run.run_id, storage=store, plugin_manager=pm)
    assert loaded.status == "suspended"
    done = await loaded.send_event("approved", {"by": "ada"})
    assert done is not None and done.status == "success"
    assert done.result == {"after": {"n": 1}, "event": {"by": "ada"}}
    stored = await store.load_run(run.run_id)
    assert stored is not None and stored.status == "success"
    await store.close()


@pytest.mark.asyncio
async def test_a_durable_wait_past_its_timeout_fails_when_the_event_comes(
    pm: PluginManager, tmp_path: Path
) -> None:
    store = SQLiteStorage(tmp_path / "runs.db")
    wf = _waiting(timeout=60)
    run = await wf.create_run(plugin_manager=pm, storage=store)
    assert (await run.start({})).status == "suspended"
    await store.close()
    # Pretend the wait began long ago (past its timeout) rather than waiting a minute.
    with sqlite3.connect(tmp_path / "runs.db") as conn:
        [(data,)] = conn.execute("SELECT data FROM stepstream_records WHERE key = 'after'")
        record = json.loads(data)
        record["started_at"] -= 3600 * 1000
        conn.execute(
            "UPDATE stepstream_records SET data = ? WHERE key = 'after'", (json.dumps(record),)
        )
    store = SQLiteStorage(tmp_path / "runs.db")
    loaded = await wf.load_run(run.run_id, storage=store, plugin_manager=pm)
    late = await loaded.send_event("approved", "late")
    assert late is not None and late.status == "failed"
    assert late.steps["after"].error == (
        "StepTimeoutError: Timeout waiting for event: step 'after' waited longer than its "
        "timeout of 60s for event 'approved'"
    )
    await store.close()


@pytest.mark.parametrize(
    ("event", "timeout", "message"),
    [
        ("", None, "needs an event name"),
        ("go", 0, "timeout must be a number of seconds > 0"),
        ("go", -1, "timeout must be a number of seconds > 0"),
        ("go", True, "timeout must be a number of seconds > 0"),
        ("go", "5", "timeout must be a number of seconds > 0"),
    ],
)
def test_a_bad_wait_for_event_is_refused_and_the_workflow_is_unchanged(
    event: str, timeout: Any, message: str
) -> None:
    wf = Workflow(id="wf").then(first)
    with pytest.raises(WorkflowDefinitionError, match=message):
        wf.wait_for_event(event, after, timeout=timeout)
    assert len(wf.nodes) == 1 and wf.commit().committed


def test_a_sleep_result_keeps_its_payload_and_start_through_the_wire() -> None:
    event = StepResultEvent(
        run_id="r",
        seq=4,
        step_id="sleep_1",
        status="success",
        output={"a": 1},
        ended_at=20,
        input_data={"a": 1},
        started_at=10,
    )
    wire = event.to_wire()
    assert list(wire["payload"]) == ["id", "payload", "startedAt", "endedAt", "status", "output"]
    assert event_from_wire(wire, run_id="r", seq=4) == event
    plain = StepResultEvent(run_id="r", seq=5, step_id="s", status="success", ended_at=3)
    assert list(plain.to_wire()["payload"]) == ["id", "status", "output", "endedAt"]
