"""Durable runs on SQLite: snapshots and event log, resume in another process, recovery after
SIGKILL, and streams resumed from a sequence number."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from stepstream import RunStateError, StepContext, Workflow, get_plugin_manager, step
from stepstream.storage import Checkpoint
from stepstream.storage.sqlite import SQLiteStorage

from ..conformance.traces import Normaliser, assert_same, load_events, load_state
from ..conformance.workflows import i_suspend_resume
from ..conftest import assert_no_tasks_left
from .durable_child import crash_workflow

ROOT = Path(__file__).resolve().parents[2]


def child(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.core.durable_child", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class Spy(SQLiteStorage):
    """Records the checkpoints the engine stores, in order."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.checkpoints: list[Checkpoint] = []

    async def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        self.checkpoints.append(checkpoint)
        await super().save_checkpoint(checkpoint)


@step(id="a")
async def a(ctx: StepContext[Any]) -> Any:
    return {"a": 1}


@step(id="b")
async def b(ctx: StepContext[Any]) -> Any:
    return {"b": 2}


@pytest.mark.asyncio
async def test_a_snapshot_at_every_step_boundary_and_the_whole_log(tmp_path: Path) -> None:
    store = Spy(tmp_path / "runs.db")
    wf = Workflow(id="wf", storage=store).then(a).then(b).commit()
    run = await wf.create_run(plugin_manager=get_plugin_manager(load_entrypoints=False))
    streamed = [e async for e in run.stream(input_data={"x": 1})]
    cps = store.checkpoints
    # Every event is stored once, in order; each checkpoint carries only what changed.
    assert [seq for cp in cps for seq, _, _ in cp.events] == [e.seq for e in streamed]
    assert [r.path for cp in cps for r in cp.records] == [("a",), ("b",)]
    assert [cp.status for cp in cps][-1] == "success" and cps[-1].release
    assert all(cp.status == "running" and not cp.release for cp in cps[:-1])
    assert cps[-1].last_seq == streamed[-1].seq and json.loads(cps[-1].result) == {"b": 2}
    log = await store.read_events(run.run_id)
    assert [e.wire for e in log] == [e.to_wire() for e in streamed]
    [summary] = await store.list_runs()
    assert (summary.run_id, summary.status) == (run.run_id, "success")
    await store.close()
    await assert_no_tasks_left()


@pytest.mark.asyncio
async def test_suspend_in_one_process_resume_in_another_matches_mastra(tmp_path: Path) -> None:
    db, run_id = str(tmp_path / "runs.db"), str(uuid.uuid4())
    proc = child("suspend", db, run_id)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    seen = [json.loads(line) for line in out.splitlines()]
    assert seen[-1]["wire"]["type"] == "step-suspended"

    store = SQLiteStorage(db)
    pm = get_plugin_manager(load_entrypoints=False)
    run = await i_suspend_resume().load_run(run_id, storage=store, plugin_manager=pm)
    assert run.status == "suspended"
    assert run.result is not None and run.result.suspended == [["approve"]]
    # A consumer that saw everything up to the suspension reconnects from its last seq.
    stream = run.stream(after_seq=seen[-1]["seq"])
    resumed = asyncio.create_task(
        run.resume(step="approve", resume_data={"approved": True, "approver": "alice"})
    )
    later = [e async for e in stream]
    result = (await resumed).to_wire()
    assert [e.seq for e in later] == list(
        range(seen[-1]["seq"] + 1, seen[-1]["seq"] + 1 + len(later))
    )

    ours, mastra = Normaliser(), Normaliser()
    full_log = [e.wire for e in await store.read_events(run_id)]
    assert full_log == [s["wire"] for s in seen] + [e.to_wire() for e in later]
    assert_same(ours(full_log), mastra(load_events("i_suspend_resume")), "events across processes")
    assert_same(ours(result), mastra(load_state("i_suspend_resume.resume-result")), "resume()")
    final = (await stream.get_workflow_state()).to_wire()
    assert_same(ours(final), mastra(load_state("i_suspend_resume.state")), "final state")
    await store.close()


@pytest.mark.asyncio
async def test_sigkill_mid_run_then_resume_runs_every_step_exactly_once(tmp_path: Path) -> None:
    db, marks, run_id = str(tmp_path / "runs.db"), tmp_path / "marks", str(uuid.uuid4())
    marks.mkdir()
    proc = child("crash", db, str(marks), run_id)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until s3 runs (or the child dies: "")
    assert line.strip() == "s3-running", proc.stderr.read() if proc.stderr else ""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    if proc.stderr is not None:
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert (marks / "done.txt").read_text().split() == ["s1", "s2"]

    (marks / "recovering").touch()
    store = SQLiteStorage(db)
    pm = get_plugin_manager(load_entrypoints=False)
    run = await crash_workflow(marks).load_run(run_id, storage=store, plugin_manager=pm)
    assert run.status == "interrupted"
    stream = run.stream(after_seq=-1)  # the whole log: the dead process's events, then ours
    task = asyncio.create_task(run.resume())
    events = [e async for e in stream]
    result = await task
    assert result.status == "success" and result.result == {"n": 5}
    assert (marks / "done.txt").read_text().split() == ["s1", "s2", "s3", "s4", "s5"]
    assert [e.seq for e in events] == list(range(len(events)))
    starts = [e.step_id for e in events if e.type == "step-start"]
    # s3's first start is in the log if it was stored before the kill: the log tells both.
    assert [s for s in starts if s != "s3"] == ["s1", "s2", "s4", "s5"]
    assert starts.index("s3") == 2 and 1 <= starts.count("s3") <= 2
    assert events[0].type == "start" and events[-1].type == "finish"
    assert list(result.steps) == ["s1", "s2", "s3", "s4", "s5"]
    await store.close()


@pytest.mark.asyncio
async def test_a_finished_run_replays_from_any_seq(tmp_path: Path) -> None:
    store = SQLiteStorage(tmp_path / "runs.db")
    wf = Workflow(id="wf", storage=store).then(a).then(b).commit()
    pm = get_plugin_manager(load_entrypoints=False)
    run = await wf.create_run(plugin_manager=pm)
    await run.start({})
    again = await wf.load_run(run.run_id, plugin_manager=pm)
    assert again.status == "success"
    tail = [e.seq async for e in again.stream(after_seq=4)]
    assert tail == [5, 6, 7]
    with pytest.raises(RunStateError, match="has ended"):
        again.stream()
    await store.close()


@pytest.mark.asyncio
async def test_load_run_errors(tmp_path: Path) -> None:
    store = SQLiteStorage(tmp_path / "runs.db")
    wf = Workflow(id="wf", storage=store).then(a).commit()
    with pytest.raises(RunStateError, match="is unknown"):
        await wf.load_run("nope")
    run = await wf.create_run(plugin_manager=get_plugin_manager(load_entrypoints=False))
    await run.start({})
    other = Workflow(id="other", storage=store).then(b).commit()
    with pytest.raises(RunStateError, match="of workflow 'wf'"):
        await other.load_run(run.run_id)
    with pytest.raises(RunStateError, match="needs a storage"):
        await Workflow(id="mem").then(a).commit().load_run(run.run_id)
    await store.close()
