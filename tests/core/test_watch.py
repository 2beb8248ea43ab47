"""``run.watch()`` with Mastra's two record types, and re-attaching to a run with
``create_run(run_id=...)`` (live in this process, or stored)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from stepstream import PluginManager, RunStateError, StepContext, Workflow, step
from stepstream.storage.sqlite import SQLiteStorage
from stepstream.testing import Recorder


class Num(BaseModel):
    value: int


@step(id="double")
async def double(ctx: StepContext[Num]) -> Num:
    return Num(value=ctx.input_data.value * 2)


@step(id="add_one")
async def add_one(ctx: StepContext[Num]) -> Num:
    return Num(value=ctx.input_data.value + 1)


@step(id="approve")
async def approve(ctx: StepContext[Any]) -> Any:
    if ctx.resume_data is None:
        await ctx.suspend({"ask": "ok?"})
    return {"approved": ctx.resume_data}


def _two_steps() -> Workflow:
    return Workflow(id="wf", input_schema=Num).then(double).then(add_one).commit()


@pytest.mark.asyncio
async def test_watch_defaults_to_mastras_state_records(pm: PluginManager) -> None:
    run = await _two_steps().create_run(plugin_manager=pm)
    records: list[dict[str, Any]] = []
    run.watch(records.append)
    result = await run.start({"value": 5})
    assert result.status == "success"

    assert {r["type"] for r in records} == {"watch"}
    assert all(isinstance(r["eventTimestamp"], int) for r in records)
    current = [r["payload"].get("currentStep", {}) for r in records]
    moments = [
        (c.get("id"), c.get("status"), r["payload"]["workflowState"]["status"])
        for c, r in zip(current, records, strict=True)
    ]
    assert moments == [
        ("double", "running", "running"),
        ("double", "success", "running"),
        ("add_one", "running", "running"),
        ("add_one", "success", "running"),
        (None, None, "success"),
    ]
    first = records[0]["payload"]
    assert first["currentStep"] == {
        "id": "double",
        "payload": {"value": 5},
        "startedAt": first["currentStep"]["startedAt"],
        "status": "running",
    }
    assert first["workflowState"]["steps"]["input"] == {"value": 5}
    assert first["workflowState"]["steps"]["double"]["status"] == "running"
    assert first["workflowState"]["result"] is None and first["workflowState"]["error"] is None
    ended = records[1]["payload"]["currentStep"]
    assert ended["output"] == {"value": 10} and ended["payload"] == {"value": 5}
    assert isinstance(ended["endedAt"], int)
    final = records[-1]["payload"]["workflowState"]
    assert final == {
        "status": "success",
        "steps": run.current_state()["steps"],
        "result": {"value": 11},
        "error": None,
    }


@pytest.mark.asyncio
async def test_watch_v2_gives_the_stream_events(pm: PluginManager, recorder: Recorder) -> None:
    run = await _two_steps().create_run(plugin_manager=pm)
    events: list[Any] = []
    run.watch(events.append, "watch-v2")
    await run.start({"value": 1})
    assert events == recorder.events
    assert events[0].type == "start" and events[-1].type == "finish"


@pytest.mark.asyncio
async def test_unwatch_stops_the_records(pm: PluginManager) -> None:
    run = await Workflow(id="wf").then(approve).commit().create_run(plugin_manager=pm)
    records: list[Any] = []
    unwatch = run.watch(records.append)
    assert (await run.start({})).status == "suspended"
    seen = len(records)
    assert records[-1]["payload"]["workflowState"]["status"] == "suspended"
    assert records[-2]["payload"]["currentStep"]["status"] == "suspended"
    assert records[-2]["payload"]["currentStep"]["suspendPayload"] == {"ask": "ok?"}
    unwatch()
    unwatch()  # a second call is harmless
    assert (await run.resume(resume_data=True)).status == "success"
    assert len(records) == seen


@pytest.mark.asyncio
async def test_watch_records_name_a_nested_workflows_steps(pm: PluginManager) -> None:
    inner = Workflow(id="inner", input_schema=Num).then(double).commit()
    wf = Workflow(id="outer", input_schema=Num).then(inner).then(add_one).commit()
    run = await wf.create_run(plugin_manager=pm)
    records: list[dict[str, Any]] = []
    run.watch(records.append)
    assert (await run.start({"value": 2})).result == {"value": 5}
    ids = [r["payload"]["currentStep"]["id"] for r in records if "currentStep" in r["payload"]]
    assert ids == ["inner", "inner.double", "inner.double", "inner", "add_one", "add_one"]
    final = records[-1]["payload"]["workflowState"]["steps"]
    assert final["inner.double"]["output"] == {"value": 4}
    assert final["inner"]["output"] == {"value": 4}


@pytest.mark.asyncio
async def test_an_async_watch_callback_is_awaited_before_the_run_goes_on(
    pm: PluginManager,
) -> None:
    order: list[str] = []

    async def slow(record: dict[str, Any]) -> None:
        await asyncio.sleep(0)
        order.append(record["payload"].get("currentStep", {}).get("status", "end"))

    run = await _two_steps().create_run(plugin_manager=pm)
    run.watch(slow)
    await run.start({"value": 1})
    assert order == ["running", "success", "running", "success", "end"]


@pytest.mark.asyncio
async def test_watch_refuses_an_unknown_type(pm: PluginManager) -> None:
    run = await _two_steps().create_run(plugin_manager=pm)
    with pytest.raises(ValueError, match="'watch' or 'watch-v2', got 'watch-v3'"):
        run.watch(print, "watch-v3")  # type: ignore[arg-type]


# -- re-attaching ------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_create_run_with_the_id_of_a_live_run_gives_that_run(pm: PluginManager) -> None:
    wf = Workflow(id="wf").then(approve).commit()
    run = await wf.create_run("r-1", plugin_manager=pm)
    assert (await run.start({})).status == "suspended"
    again = await wf.create_run(run_id="r-1")
    assert again is run
    records: list[Any] = []
    again.watch(records.append, "watch-v2")
    assert (await again.resume(step=approve, resume_data="yes")).result == {"approved": "yes"}
    assert [e.type for e in records][-1] == "finish"
    # An ended run is let go: the same id now makes a new run.
    fresh = await wf.create_run("r-1", plugin_manager=pm)
    assert fresh is not run and fresh.status == "pending"


@pytest.mark.asyncio
async def test_create_run_with_the_id_of_a_stored_run_loads_it(
    tmp_path: Path, pm: PluginManager
) -> None:
    store = SQLiteStorage(tmp_path / "runs.db")
    wf = Workflow(id="wf", storage=store).then(approve).commit()
    run = await wf.create_run("r-2", plugin_manager=pm)
    assert (await run.start({})).status == "suspended"
    # Another process: the same workflow, built again, knows no live run.
    elsewhere = Workflow(id="wf", storage=store).then(approve).commit()
    taken = await elsewhere.create_run(run_id="r-2", plugin_manager=pm)
    assert taken is not run and taken.status == "suspended"
    assert (await taken.resume(resume_data=1)).result == {"approved": 1}
    other = Workflow(id="other", storage=store).then(approve).commit()
    with pytest.raises(RunStateError, match="run r-2 is of workflow 'wf'"):
        await other.create_run(run_id="r-2")
    await store.close()
