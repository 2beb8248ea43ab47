"""The remote-run proxy's subscription on its own: the stored log as events, end reasons."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from stepstream import Workflow, get_plugin_manager
from stepstream.server._remote import RemoteRun
from stepstream.storage.sqlite import SQLiteStorage

from . import workflows
from .workflows import approval, first


async def stored(tmp_path: Path, wf: Workflow) -> tuple[SQLiteStorage, Any, RemoteRun]:
    storage = SQLiteStorage(tmp_path / "runs.db")
    pm = get_plugin_manager(load_entrypoints=False)
    run = await wf.create_run(storage=storage, plugin_manager=pm)
    result = await run.start({})
    snapshot = await storage.load_run(run.run_id)
    assert snapshot is not None

    async def reload() -> Any:
        raise AssertionError("not needed here")

    return storage, result, RemoteRun(wf, storage, snapshot, reload)


@pytest.mark.asyncio
async def test_a_subscription_yields_the_log_as_events_and_says_why_it_ended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workflows, "MARKS", tmp_path)  # where the steps mark
    done = Workflow(id="done").then(first).commit()
    storage, result, remote = await stored(tmp_path, done)
    try:
        assert result.status == "success"
        log = await storage.read_events(remote.run_id)
        async with remote.subscribe() as events:
            seen = [e async for e in events]
        assert [e.to_wire() for e in seen] == [e.wire for e in log]
        assert events.end_reason == "finished"
        async with remote.subscribe(after_seq=len(log) - 2) as events:
            assert [e.seq async for e in events] == [len(log) - 1]
        partial = remote.subscribe(after_seq=0)
        await anext(partial)
        await partial.aclose()
        assert partial.end_reason == "closed"
        assert (await remote.wait()).status == "success"
    finally:
        await storage.close()


@pytest.mark.asyncio
async def test_a_subscription_ends_at_a_suspension_unless_asked_to_go_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workflows, "MARKS", tmp_path)  # where the steps mark
    storage, result, remote = await stored(tmp_path, approval)
    try:
        assert result.status == "suspended"
        async with remote.subscribe(close_on_suspend=True) as events:
            assert [e.type async for e in events][-1] == "step-suspended"
        assert events.end_reason == "suspended"
        through = remote.subscribe()  # as a local run's: on through the suspension
        async for event in through:
            if event.type == "step-suspended":
                break
        waiting = asyncio.ensure_future(anext(through))  # the run is only suspended: it waits
        run = await approval.load_run(remote.run_id, storage=storage)
        await run.resume(step="approve", resume_data={"by": 1})
        assert (await asyncio.wait_for(waiting, 30)).type == "step-start"
        assert [e.type async for e in through][-1] == "finish"
        assert through.end_reason == "finished"
    finally:
        await storage.close()
