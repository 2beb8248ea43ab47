"""Durable runs at awkward moments (found in review): checkpoints racing parallel steps,
cancels during checkpoints, recovery inside nested workflows, events without data."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from stepstream import Event, StepContext, Workflow, get_plugin_manager, hookimpl, step
from stepstream.storage import Checkpoint
from stepstream.storage.sqlite import SQLiteStorage


class Checked(SQLiteStorage):
    """Asserts at every checkpoint that its events continue the log with no gap."""

    def __init__(self, path: Path, **options: Any) -> None:
        super().__init__(path, **options)
        self.first_gate: asyncio.Event | None = None
        self.final_gate: asyncio.Event | None = None
        self.saving = asyncio.Event()
        self.checkpoints: list[Checkpoint] = []
        self.last: dict[str, int] = {}

    async def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        if self.first_gate is not None:
            gate, self.first_gate = self.first_gate, None
            await gate.wait()
        if checkpoint.status != "running" and self.final_gate is not None:
            self.saving.set()
            await self.final_gate.wait()
        seqs = [seq for seq, _, _ in checkpoint.events]
        first = self.last.get(checkpoint.run_id, -1) + 1
        assert seqs == list(range(first, checkpoint.last_seq + 1)), "a gap in the log"
        self.checkpoints.append(checkpoint)
        await super().save_checkpoint(checkpoint)
        self.last[checkpoint.run_id] = checkpoint.last_seq


@pytest.mark.asyncio
async def test_a_checkpoint_racing_a_parallel_step_never_outruns_the_log(tmp_path: Path) -> None:
    store = Checked(tmp_path / "runs.db")
    b_finished = asyncio.Event()
    store.first_gate = b_finished  # the first write waits until `b` has finished

    class Watch:
        @hookimpl
        def on_event(self, event: Event) -> None:
            if event.type == "step-finish" and getattr(event, "step_id", "") == "b":
                b_finished.set()

    @step(id="a")
    async def a(ctx: StepContext[Any]) -> Any:
        return {"a": 1}

    @step(id="b")
    async def b(ctx: StepContext[Any]) -> Any:
        return {"b": 1}

    pm = get_plugin_manager(load_entrypoints=False, plugins=[Watch()])
    wf = Workflow(id="wf", storage=store).parallel([a, b]).commit()
    run = await wf.create_run(plugin_manager=pm)
    result = await run.start({})
    assert result.status == "success" and len(store.checkpoints) >= 2
    stored = await store.load_run(run.run_id)
    assert stored is not None and stored.status == "success"
    assert list(stored.state["steps"]) == list(result.steps)  # completion order
    await store.close()


@pytest.mark.asyncio
async def test_a_cancel_during_the_final_checkpoint_still_finishes_and_stores(
    tmp_path: Path,
) -> None:
    store = Checked(tmp_path / "runs.db")
    store.final_gate = asyncio.Event()

    @step(id="only")
    async def only(ctx: StepContext[Any]) -> Any:
        return {"ok": True}

    run = await Workflow(id="wf", storage=store).then(only).commit().create_run()
    stream = run.stream(input_data={})
    types: list[str] = []

    async def consume() -> None:
        async for event in stream:
            types.append(event.type)

    reader = asyncio.create_task(consume())
    await store.saving.wait()  # the run is storing its final state
    canceling = asyncio.create_task(run.cancel())
    await asyncio.sleep(0)  # let the cancel reach the run (the gate below is what orders)
    store.final_gate.set()
    await canceling
    await reader
    assert types[-1] == "finish"
    stored = await store.load_run(run.run_id)
    assert stored is not None and stored.status in ("success", "canceled")
    await store.close()


@pytest.mark.asyncio
async def test_recovery_inside_a_nested_workflow_skips_its_finished_steps(tmp_path: Path) -> None:
    store = Checked(tmp_path / "runs.db", durability="sync")  # i1 is stored when i2 starts
    ran: list[str] = []
    blocked = asyncio.Event()

    def make(step_id: str, block: bool = False) -> Any:
        @step(id=step_id)
        async def body(ctx: StepContext[Any]) -> Any:
            if block and not ran.count("recovering"):
                blocked.set()
                await asyncio.Event().wait()
            ran.append(step_id)
            return {"n": ctx.input_data["n"] + 1}

        return body

    inner = Workflow(id="inner").then(make("i1")).then(make("i2", block=True)).commit()
    wf = Workflow(id="outer", storage=store).then(make("o1")).then(inner).then(make("o2")).commit()
    run = await wf.create_run()
    task = asyncio.create_task(run.start({"n": 0}))
    await blocked.wait()
    await run.abandon()  # the process "stops": the run stays as stored
    await asyncio.gather(task, return_exceptions=True)
    ran.append("recovering")
    again = await wf.load_run(run.run_id)
    assert again.status == "interrupted"
    result = await again.resume()
    assert result.status == "success" and result.result == {"n": 4}
    assert ran == ["o1", "i1", "recovering", "i2", "o2"]  # i1 did not run again
    await store.close()


@pytest.mark.asyncio
async def test_events_with_no_data_and_events_sent_while_suspending(tmp_path: Path) -> None:
    @step(id="after")
    async def after(ctx: StepContext[Any]) -> Any:
        return {"event": ctx.resume_data}

    wf = Workflow(id="wf").wait_for_event("go", after).commit()
    run = await wf.create_run(plugin_manager=get_plugin_manager(load_entrypoints=False))
    stream = run.stream(input_data={})
    async for event in stream:  # in memory, the step waits in place
        if event.type == "step-waiting":
            assert await run.send_event("go") is None  # no data is still the event
    done = await stream.get_workflow_state()
    assert done.status == "success" and done.result == {"event": None}

    store = SQLiteStorage(tmp_path / "runs.db")  # its checkpoints make the race real
    run = await wf.create_run(
        plugin_manager=get_plugin_manager(load_entrypoints=False), storage=store
    )
    stream = run.stream(input_data={})
    async for event in stream:
        if event.type == "step-suspended":
            # The run may still be ending its execution: the event is then kept, and
            # delivered once it has suspended; else it resumes the run at once.
            sent = await run.send_event("go", "late")
            assert sent is None or sent.result == {"event": "late"}
    result = await stream.get_workflow_state()  # the stream ended with `finish`
    assert result.status == "success" and result.result == {"event": "late"}
    await store.close()


@pytest.mark.asyncio
async def test_a_cancel_while_finish_is_awaited_sends_one_finish() -> None:
    """`finish` is dispatched before the run awaits plugins' work on it: a cancel during that
    wait must not send it again."""
    finishes: list[int] = []
    finish_sent = asyncio.Event()

    @step(id="only")
    async def only(ctx: StepContext[Any]) -> Any:
        return {}

    run = (
        await Workflow(id="wf")
        .then(only)
        .commit()
        .create_run(plugin_manager=get_plugin_manager(load_entrypoints=False))
    )

    async def slow_watcher(event: Event) -> None:
        if event.type == "finish":
            finishes.append(event.seq)
            finish_sent.set()
            if len(finishes) == 1:
                await asyncio.Event().wait()  # the run waits here until it is canceled

    run.watch(slow_watcher, "watch-v2")
    task = asyncio.create_task(run.start({}))
    await finish_sent.wait()
    await run.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert len(finishes) == 1  # dispatched once, never again
