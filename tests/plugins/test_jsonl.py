"""The JSON-lines exporter and the threaded exporter base it stands on."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from stepstream import Event, StepContext, Workflow, get_plugin_manager, step
from stepstream.plugins.exporter import ThreadedExporter
from stepstream.plugins.jsonl import JsonLinesExporter

from ..conftest import assert_no_tasks_left


@step(id="chatty")
async def chatty(ctx: StepContext[Any]) -> Any:
    for i in range(600):
        await ctx.write({"i": i})
    return {"done": True}


@pytest.mark.asyncio
async def test_a_file_per_run_holds_exactly_the_streamed_events(tmp_path: Path) -> None:
    exporter = JsonLinesExporter(tmp_path)
    pm = get_plugin_manager(load_entrypoints=False, plugins=[("jsonl", exporter)])
    run = await Workflow(id="wf").then(chatty).commit().create_run(plugin_manager=pm)
    streamed = [e.to_wire() async for e in run.stream(input_data={"x": 1})]
    assert await exporter.aflush()
    lines = exporter.path_for(run.run_id).read_text().splitlines()
    assert [json.loads(line) for line in lines] == streamed
    assert exporter.exported == len(streamed)
    exporter.close()
    await assert_no_tasks_left()


@pytest.mark.asyncio
async def test_one_appending_file_for_all_runs(tmp_path: Path) -> None:
    path = tmp_path / "all.jsonl"
    exporter = JsonLinesExporter(file=path)
    pm = get_plugin_manager(load_entrypoints=False, plugins=[("jsonl", exporter)])
    wf = Workflow(id="wf").then(chatty).commit()
    runs = [await wf.create_run(plugin_manager=pm) for _ in range(2)]
    for run in runs:
        await run.start({})
    exporter.close()
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for run in runs:
        mine = [r for r in rows if r["runId"] == run.run_id]
        assert [r["seq"] for r in mine] == list(range(len(mine)))
        assert mine[-1]["event"]["type"] == "finish"


class Stuck(ThreadedExporter):
    """An exporter whose worker waits on a gate: shows backpressure and failure reporting."""

    def __init__(self) -> None:
        super().__init__("stuck", batch_size=10, max_backlog=20)
        self.gate = threading.Event()
        self.seen: list[int] = []
        self.fail_once = False

    def export(self, events: list[Event]) -> None:
        self.gate.wait(10)
        if self.fail_once:
            self.fail_once = False
            raise OSError("disk full")
        self.seen.extend(e.seq for e in events)


@pytest.mark.asyncio
async def test_a_slow_exporter_pauses_the_run_instead_of_growing(tmp_path: Path) -> None:
    exporter = Stuck()
    pm = get_plugin_manager(load_entrypoints=False, plugins=[("stuck", exporter)])
    run = await Workflow(id="wf").then(chatty).commit().create_run(plugin_manager=pm)
    task = run.start({})
    started = asyncio_task(task)
    # The worker is held: the run must stop once the backlog passes its bound.
    while not exporter._waiters:
        await asyncio_sleep0()
    assert run.status == "running"
    assert exporter._pending <= exporter.max_backlog + 1
    exporter.gate.set()
    result = await started
    assert result.status == "success"
    assert exporter.flush()
    assert exporter.seen == list(range(len(exporter.seen))) and len(exporter.seen) > 600
    exporter.close()


@pytest.mark.asyncio
async def test_a_failing_exporter_is_isolated_counted_and_reported() -> None:
    exporter = Stuck()
    exporter.gate.set()
    exporter.fail_once = True
    pm = get_plugin_manager(load_entrypoints=False, plugins=[("stuck", exporter)])
    run = await Workflow(id="wf").then(chatty).commit().create_run(plugin_manager=pm)
    result = await run.start({})
    assert result.status == "success"
    assert exporter.failures == 1
    assert [(e.plugin, e.hook) for e in result.plugin_errors] == [("stuck", "on_event")]
    assert "exporter 'stuck' failed: OSError: disk full" in result.plugin_errors[0].error
    exporter.close()


def asyncio_task(coro: Any) -> Any:
    import asyncio

    return asyncio.ensure_future(coro)


async def asyncio_sleep0() -> None:
    import asyncio

    await asyncio.sleep(0)  # yield to the run; the loop condition is what synchronises


@pytest.mark.asyncio
@pytest.mark.parametrize("run_id", ["../escaped", "a/../../escaped", "/tmp/stepstream-abs", ".."])
async def test_a_run_id_that_is_not_a_file_name_writes_nothing_anywhere(
    tmp_path: Path, run_id: str
) -> None:
    events = tmp_path / "events"
    exporter = JsonLinesExporter(events)
    pm = get_plugin_manager(load_entrypoints=False, plugins=[("jsonl", exporter)])
    wf = Workflow(id="wf").then(chatty).commit()
    run = await wf.create_run(run_id, plugin_manager=pm)
    result = await run.start({"x": 1})
    assert await exporter.aflush()
    assert result.status == "success"  # the run goes on; the exporter reports its refusal
    assert {(e.plugin, e.hook) for e in result.plugin_errors} == {("jsonl", "on_event")}
    assert "cannot name a file" in result.plugin_errors[0].error
    assert _files(tmp_path) == []  # not even the events directory
    assert _files(Path("/tmp"), "stepstream-abs*", deep=False) == []
    exporter.close()


def _files(directory: Path, pattern: str = "*", *, deep: bool = True) -> list[str]:
    found = directory.rglob(pattern) if deep else directory.glob(pattern)
    return sorted(p.name for p in found)
