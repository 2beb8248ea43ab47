"""Runs created and not started yet: stored ``pending`` by ``create_run``, startable anywhere.

Each test opens two backend instances on one store, as two processes sharing it would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio

from stepstream import RunClaimedError, StepContext, Workflow, get_plugin_manager, step
from stepstream.recovery import recover_interrupted
from stepstream.storage import Claim, Storage
from stepstream.storage._base import new_owner, now_ms


def counting(calls: list[str]) -> Workflow:
    @step(id="once")
    async def once(ctx: StepContext[Any]) -> Any:
        calls.append(ctx.run_id)
        await asyncio.sleep(0)  # let a rival start interleave, if it could
        return {"n": ctx.input_data["n"] + 1}

    return Workflow(id="wf").then(once).commit()


def _pm() -> Any:
    return get_plugin_manager(load_entrypoints=False)


@pytest_asyncio.fixture
async def pair(storage_opener: Callable[[], Storage]) -> AsyncIterator[tuple[Storage, Storage]]:
    """Two backend instances on one store, as two processes sharing it."""
    here, there = storage_opener(), storage_opener()
    try:
        yield here, there
    finally:
        await here.close()
        await there.close()


@pytest.mark.asyncio
async def test_create_run_stores_a_pending_run_that_another_process_starts(
    pair: tuple[Storage, Storage],
) -> None:
    here, there = pair
    calls: list[str] = []
    run = await counting(calls).create_run(plugin_manager=_pm(), storage=here)
    stored = await there.load_run(run.run_id)
    assert stored is not None and (stored.status, stored.owner) == ("pending", None)
    assert [s.run_id for s in await there.list_runs(status="pending")] == [run.run_id]
    assert await there.read_events(run.run_id) == []
    # Another process (another Workflow object: nothing live) takes it up, pending.
    taken = await counting(calls).create_run(run.run_id, plugin_manager=_pm(), storage=there)
    assert taken is not run and taken.status == "pending" and taken.result is None
    result = await taken.start({"n": 1})
    assert (result.status, result.result, calls) == ("success", {"n": 2}, [run.run_id])
    done = await here.load_run(run.run_id)
    assert done is not None and (done.status, done.state["input"]) == ("success", {"n": 1})
    assert await here.list_runs(status="pending") == []
    with pytest.raises(RunClaimedError, match="already exists"):
        await run.start({"n": 1})  # the first process's copy may not start it again
    assert calls == [run.run_id]


@pytest.mark.asyncio
async def test_of_two_processes_starting_one_pending_run_one_starts_it(
    pair: tuple[Storage, Storage],
) -> None:
    here, there = pair
    calls: list[str] = []
    made = await counting(calls).create_run(plugin_manager=_pm(), storage=here)
    rivals = [
        await counting(calls).create_run(made.run_id, plugin_manager=_pm(), storage=store)
        for store in (here, there)
    ]
    starts = (r.start({"n": 1}) for r in rivals)
    outcomes = await asyncio.gather(*starts, return_exceptions=True)
    won = [o for o in outcomes if not isinstance(o, BaseException)]
    lost = [o for o in outcomes if isinstance(o, BaseException)]
    assert [w.status for w in won] == ["success"]
    assert len(lost) == 1 and isinstance(lost[0], RunClaimedError), lost
    assert calls == [made.run_id]  # the step ran once
    events = await there.read_events(made.run_id)
    types = [e.type for e in events]  # one execution's log, not two interleaved
    assert (types.count("start"), types.count("finish")) == (1, 1)
    assert [e.seq for e in events] == list(range(len(events)))


@pytest.mark.asyncio
async def test_creating_a_run_that_exists_changes_nothing(storage: Storage) -> None:
    calls: list[str] = []
    run = await counting(calls).create_run("r-1", plugin_manager=_pm(), storage=storage)
    await run.start({"n": 1})
    before = await storage.load_run("r-1")
    await storage.create_pending("r-1", "wf")  # a late create of the same id
    again = await counting(calls).create_run("r-1", plugin_manager=_pm(), storage=storage)
    assert again.status == "success" and again.result is not None
    assert await storage.load_run("r-1") == before
    twice = await counting(calls).create_run("r-2", plugin_manager=_pm(), storage=storage)
    await storage.create_pending("r-2", "wf")
    assert twice.status == "pending" and len(await storage.list_runs(status="pending")) == 1


@pytest.mark.asyncio
async def test_recovery_and_pruning_leave_pending_runs_alone(storage: Storage) -> None:
    calls: list[str] = []
    wf = counting(calls)
    run = await wf.create_run(plugin_manager=_pm(), storage=storage)
    assert await recover_interrupted([wf], storage, plugin_manager=_pm()) == []
    assert await storage.list_runs(status="interrupted") == []
    # older_than < 0 counts this very millisecond in, however fast the test runs.
    assert await storage.prune(older_than=-60) == 0  # only final runs, by default
    stored = await storage.load_run(run.run_id)
    assert stored is not None and stored.status == "pending" and calls == []
    assert await storage.prune(older_than=-60, statuses=("pending",)) == 1
    assert await storage.load_run(run.run_id) is None


@pytest.mark.asyncio
async def test_concurrent_creates_are_stored_together_once_each(storage: Storage) -> None:
    ids = [f"r-{i}" for i in range(20)]
    # Queued at once, they share the writer's transactions; an id twice is stored once.
    await asyncio.gather(*(storage.create_pending(r, "wf") for r in [*ids, *ids[:5]]))
    listed = await storage.list_runs(status="pending", limit=100)
    assert sorted(s.run_id for s in listed) == sorted(ids)
    assert {s.workflow_id for s in listed} == {"wf"}


@pytest.mark.asyncio
async def test_a_pending_run_is_started_only_as_its_own_workflow(storage: Storage) -> None:
    await storage.create_pending("r-1", "wf")
    foreign = Claim("r-1", new_owner(), now_ms() + 30_000, create=("other", "null", "{}"))
    with pytest.raises(RunClaimedError, match="r-1"):
        await storage.claim(foreign)
    stored = await storage.load_run("r-1")
    assert stored is not None and (stored.workflow_id, stored.status) == ("wf", "pending")
    own = Claim("r-1", new_owner(), now_ms() + 30_000, create=("wf", '{"n": 1}', "{}"))
    await storage.claim(own)
    stored = await storage.load_run("r-1")
    assert stored is not None and (stored.status, stored.state["input"]) == ("running", {"n": 1})
    await storage.release("r-1", own.owner)
