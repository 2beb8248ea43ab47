"""Durable runs when storing fails or is contended, on both backends: values JSON cannot
hold, a write lock held past the timeout, a dropped connection, two claimants of one run."""

from __future__ import annotations

import asyncio
import datetime
import math
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from stepstream import (
    RunClaimedError,
    RuntimeContext,
    StepContext,
    StorageError,
    Workflow,
    get_plugin_manager,
    recover_interrupted,
    step,
)
from stepstream.storage import Storage
from stepstream.storage.postgres import PostgresStorage
from stepstream.storage.sqlite import SQLiteStorage

from ..conftest import assert_no_tasks_left


@pytest.fixture(params=["sqlite", "postgres"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Storage]:
    """Opens a backend on this test's own store; options go to the backend."""
    if request.param == "sqlite":
        return lambda **options: SQLiteStorage(tmp_path / "runs.db", **options)
    dsn: str = request.getfixturevalue("postgres_dsn")
    schema = f"test_{uuid.uuid4().hex}"
    return lambda **options: PostgresStorage(dsn, schema=schema, **options)


@pytest_asyncio.fixture
async def store(opener: Callable[..., Storage]) -> AsyncIterator[Storage]:
    backend = opener()
    try:
        yield backend
    finally:
        await backend.close()


def returning(value: Any) -> Workflow:
    @step(id="ok")
    async def ok(ctx: StepContext[Any]) -> Any:
        return {"n": 1}

    @step(id="bad")
    async def bad(ctx: StepContext[Any]) -> Any:
        return {"data": {"when": value}}

    return Workflow(id="wf").then(ok).then(bad).commit()


@pytest.mark.parametrize(
    ("value", "culprit"),
    [
        (datetime.date(2026, 1, 2), "['data']['when'] is a datetime.date"),
        ({1, 2}, "['data']['when'] is a builtins.set"),
        (b"raw", "['data']['when'] is a builtins.bytes"),
        (math.nan, "['data']['when'] is nan (not JSON)"),
        ("\ud800", "['data']['when'] holds a lone surrogate"),
    ],
)
@pytest.mark.asyncio
async def test_an_output_json_cannot_hold_fails_its_step_and_the_run_ends(
    store: Storage, value: Any, culprit: str
) -> None:
    pm = get_plugin_manager(load_entrypoints=False)
    run = await returning(value).create_run(plugin_manager=pm, storage=store)
    events = [e async for e in run.stream(input_data={})]
    assert events[-1].type == "finish"
    result = await run.wait()
    assert (result.status, run.status) == ("failed", "failed")
    assert result.error is not None and result.error.startswith("StorageError: step 'bad'")
    assert culprit in result.error
    bad = [e for e in events if e.type == "step-result" and getattr(e, "step_id", "") == "bad"]
    assert bad[0].to_wire()["payload"]["status"] == "failed"
    stored = await store.load_run(run.run_id)
    assert stored is not None and stored.status == "failed"
    assert stored.state["steps"]["bad"]["status"] == "failed"
    assert [e.seq for e in await store.read_events(run.run_id)] == [e.seq for e in events]
    await store.close()  # the pool's own tasks end with it
    await assert_no_tasks_left()


@pytest.mark.asyncio
async def test_a_runtime_context_json_cannot_hold_is_refused_clearly(store: Storage) -> None:
    pm = get_plugin_manager(load_entrypoints=False)
    run = await returning(1).create_run(plugin_manager=pm, storage=store)
    context = RuntimeContext({"when": datetime.date(2026, 1, 2), "user": "ada"})
    with pytest.raises(StorageError, match=r"runtime context cannot be stored.*\['when'\]"):
        await run.start({}, runtime_context=context)
    stored = await store.load_run(run.run_id)  # nothing half-stored: pending, as created
    assert stored is not None and (stored.status, stored.state["input"]) == ("pending", None)
    assert await store.read_events(run.run_id) == []

    @step(id="sets")
    async def sets(ctx: StepContext[Any]) -> Any:
        ctx.runtime_context.set("seen", {1, 2})
        return {}

    later = (
        await Workflow(id="wf2").then(sets).commit().create_run(plugin_manager=pm, storage=store)
    )
    result = await later.start({})
    assert result.status == "failed"
    assert result.error is not None and "runtime context cannot be stored" in result.error
    assert "['seen'] is a builtins.set" in result.error


@pytest.mark.asyncio
async def test_a_run_is_stored_before_its_first_step_ends(
    store: Storage, opener: Callable[..., Storage]
) -> None:
    inside, release = asyncio.Event(), asyncio.Event()

    @step(id="first")
    async def first(ctx: StepContext[Any]) -> Any:
        inside.set()
        await release.wait()
        return {}

    wf = Workflow(id="wf").then(first).commit()
    run = await wf.create_run(
        plugin_manager=get_plugin_manager(load_entrypoints=False), storage=store
    )
    task = asyncio.create_task(run.start({"city": "Oslo"}))
    await inside.wait()
    other = opener()  # another process's view
    try:
        seen = await other.load_run(run.run_id)
        assert seen is not None
        assert (seen.status, seen.state["input"]) == ("running", {"city": "Oslo"})
        assert seen.owner is not None
        loaded = await wf.load_run(run.run_id, storage=other)
        assert loaded.status == "running"  # executed elsewhere: not ours to take
        with pytest.raises(RunClaimedError, match="being executed by") as caught:
            await loaded.resume()
        assert caught.value.owner == seen.owner
    finally:
        release.set()
        assert (await task).status == "success"
        await other.close()


@pytest.mark.asyncio
async def test_two_runs_resuming_one_suspended_run_execute_it_once(
    store: Storage, opener: Callable[..., Storage]
) -> None:
    ran: list[str] = []

    @step(id="approve")
    async def approve(ctx: StepContext[Any]) -> Any:
        if ctx.resume_data is None:
            ctx.suspend({"ask": "ok?"})
        ran.append(ctx.resume_data["by"])
        await asyncio.sleep(0)  # give the other claimant every chance to run it too
        return {"by": ctx.resume_data["by"]}

    wf = Workflow(id="wf").then(approve).commit()
    pm = get_plugin_manager(load_entrypoints=False)
    run = await wf.create_run(plugin_manager=pm, storage=store)
    assert (await run.start({})).status == "suspended"
    second = opener()
    try:
        twin = await wf.load_run(run.run_id, storage=second, plugin_manager=pm)
        outcomes = await asyncio.gather(
            run.resume(resume_data={"by": "ada"}),
            twin.resume(resume_data={"by": "bob"}),
            return_exceptions=True,
        )
        won = [o for o in outcomes if not isinstance(o, BaseException)]
        lost = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(won) == 1 and won[0].status == "success"
        assert len(lost) == 1 and isinstance(lost[0], RunClaimedError)
        assert len(ran) == 1
        stored = await store.load_run(run.run_id)
        assert stored is not None and stored.status == "success"
        assert stored.result == {"by": ran[0]}
        # The loser is stale now: it cannot resume what the winner finished.
        loser = run if isinstance(outcomes[0], BaseException) else twin
        with pytest.raises(RunClaimedError):
            await loser.resume(resume_data={"by": "late"})
        assert len(ran) == 1
    finally:
        await second.close()


@pytest.mark.asyncio
async def test_cancel_of_an_interrupted_stored_run_stores_canceled(store: Storage) -> None:
    blocked = asyncio.Event()

    @step(id="slow")
    async def slow(ctx: StepContext[Any]) -> Any:
        blocked.set()
        await asyncio.Event().wait()

    wf = Workflow(id="wf").then(slow).commit()
    pm = get_plugin_manager(load_entrypoints=False)
    run = await wf.create_run(plugin_manager=pm, storage=store)
    task = asyncio.create_task(run.start({}))
    await blocked.wait()
    await run.abandon()  # as a process stopping: the run stays interrupted
    await asyncio.gather(task, return_exceptions=True)
    assert run.status == "interrupted"
    loaded = await wf.load_run(run.run_id, storage=store, plugin_manager=pm)
    assert loaded.status == "interrupted"
    canceled = await loaded.cancel()
    assert canceled is not None and canceled.status == "canceled"
    stored = await store.load_run(run.run_id)
    assert stored is not None and stored.status == "canceled"
    log = await store.read_events(run.run_id)
    assert log[-1].type == "finish" and [e.seq for e in log] == list(range(len(log)))


@pytest.mark.asyncio
async def test_a_write_lock_held_too_long_fails_the_run_clearly(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    store = SQLiteStorage(path, busy_timeout=0.05)
    store.attempts = 2
    blocker = sqlite3.connect(path, isolation_level=None)

    @step(id="locks")
    async def locks(ctx: StepContext[Any]) -> Any:
        blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        return {"a": 1}

    @step(id="after")
    async def after(ctx: StepContext[Any]) -> Any:
        return {"b": 1}

    @step(id="later")
    async def later(ctx: StepContext[Any]) -> Any:
        return {"c": 1}

    wf = Workflow(id="wf").then(locks).then(after).then(later).commit()
    run = await wf.create_run(
        plugin_manager=get_plugin_manager(load_entrypoints=False), storage=store
    )
    try:
        events = [e async for e in run.stream(input_data={})]
        result = await run.wait()
        assert events[-1].type == "finish"
        assert (result.status, run.status) == ("failed", "failed")
        assert result.error is not None and result.error.startswith("StorageError: storage failed")
        assert "after 2 attempts" in result.error and "locked" in result.error
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    await store.close()
    await assert_no_tasks_left()


@pytest.mark.asyncio
async def test_a_dropped_postgres_connection_is_retried(postgres_dsn: str) -> None:
    import psycopg

    store = PostgresStorage(postgres_dsn, schema=f"test_{uuid.uuid4().hex}")

    @step(id="drops")
    async def drops(ctx: StepContext[Any]) -> Any:
        async with await psycopg.AsyncConnection.connect(postgres_dsn, autocommit=True) as conn:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        return {"a": 1}

    @step(id="after")
    async def after(ctx: StepContext[Any]) -> Any:
        return {"b": 1}

    wf = Workflow(id="wf").then(drops).then(after).commit()
    run = await wf.create_run(
        plugin_manager=get_plugin_manager(load_entrypoints=False), storage=store
    )
    try:
        events = [e async for e in run.stream(input_data={})]
        result = await run.wait()
        assert result.status == "success", result.error
        log = await store.read_events(run.run_id)
        assert [e.seq for e in log] == [e.seq for e in events]
    finally:
        await store.close()


@pytest.mark.asyncio
async def test_a_lease_is_renewed_while_the_run_executes(
    opener: Callable[..., Storage],
) -> None:
    """A run longer than its lease stays its owner's: the storage renews the lease."""
    store = opener(lease_seconds=0.3)
    other = opener(lease_seconds=0.3)
    inside, release = asyncio.Event(), asyncio.Event()

    @step(id="long")
    async def long(ctx: StepContext[Any]) -> Any:
        inside.set()
        await release.wait()
        return {}

    wf = Workflow(id="wf").then(long).commit()
    pm = get_plugin_manager(load_entrypoints=False)
    run = await wf.create_run(plugin_manager=pm, storage=store)
    task = asyncio.create_task(run.start({}))
    try:
        await inside.wait()
        await asyncio.sleep(1.0)  # wall time passes: three leases' worth, renewed meanwhile
        seen = await other.load_run(run.run_id)
        assert seen is not None and seen.status == "running"
        assert await recover_interrupted([wf], other, plugin_manager=pm) == []
    finally:
        release.set()
        result = await task
        await store.close()
        await other.close()
    assert result.status == "success"
