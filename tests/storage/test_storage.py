"""The storage contract, run on every backend through the ``storage`` fixture."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from stepstream.storage import RunSnapshot, RunSummary, Storage, StoredEvent
from stepstream.storage.postgres import PostgresStorage

NESTED_STATE: dict[str, Any] = {
    "steps": {
        "fetch": {"status": "success", "output": {"items": [1, 2.5, None, True, "ünïcødé ✓"]}},
        "think": {"status": "suspended", "payload": None, "path": [["outer", "inner"], []]},
    },
    "empty": {},
    "emoji": "🚀 日本語",
}


def snapshot(run_id: str = "run-1", **changes: Any) -> RunSnapshot:
    fields: dict[str, Any] = {
        "run_id": run_id,
        "workflow_id": "wf",
        "status": "running",
        "state": NESTED_STATE,
        "updated_at": 1_000,
    }
    return RunSnapshot(**(fields | changes))


def events(*seqs: int, run: str = "run-1") -> list[StoredEvent]:
    return [
        StoredEvent(seq, "step-start", {"runId": run, "seq": seq, "payload": {"x": [seq, None]}})
        for seq in seqs
    ]


def test_backends_are_storages(storage: Storage) -> None:
    assert isinstance(storage, Storage)


@pytest.mark.asyncio
async def test_snapshot_round_trip_keeps_nested_json(storage: Storage) -> None:
    saved = snapshot(
        status="suspended",
        result={"answer": ["ja", None, {"ß": 1}]},
        error="boom ✗ 💥",
        suspended=[["outer", "think"]],
        runtime_context={"user": {"name": "Zoë", "tags": []}},
        last_seq=41,
    )
    await storage.save_run(saved)
    assert await storage.load_run("run-1") == saved


@pytest.mark.asyncio
async def test_save_overwrites_with_the_latest_snapshot(storage: Storage) -> None:
    await storage.save_run(snapshot(status="running", last_seq=3))
    await storage.save_run(snapshot(status="success", result=42, last_seq=9, updated_at=2_000))
    loaded = await storage.load_run("run-1")
    assert loaded is not None
    assert (loaded.status, loaded.result, loaded.last_seq) == ("success", 42, 9)
    assert await storage.list_runs() == [RunSummary("run-1", "wf", "success", 2_000)]


@pytest.mark.asyncio
async def test_unknown_run_is_none_and_has_no_events(storage: Storage) -> None:
    assert await storage.load_run("nope") is None
    assert await storage.read_events("nope") == []


@pytest.mark.asyncio
async def test_save_without_updated_at_stamps_now(storage: Storage) -> None:
    before = time.time_ns() // 1_000_000
    await storage.save_run(snapshot(updated_at=0))
    after = time.time_ns() // 1_000_000
    [summary] = await storage.list_runs()
    assert before <= summary.updated_at <= after


@pytest.mark.asyncio
async def test_events_are_read_in_seq_order(storage: Storage) -> None:
    await storage.append_events("run-1", events(2, 0))
    await storage.append_events("run-1", events(1, 3))
    stored = await storage.read_events("run-1")
    assert [e.seq for e in stored] == [0, 1, 2, 3]
    assert stored[1] == events(1)[0]


@pytest.mark.asyncio
async def test_after_seq_returns_only_later_events(storage: Storage) -> None:
    await storage.append_events("run-1", events(0, 1, 2, 3, 4))
    assert [e.seq for e in await storage.read_events("run-1", after_seq=2)] == [3, 4]
    assert await storage.read_events("run-1", after_seq=4) == []
    assert len(await storage.read_events("run-1", after_seq=-1)) == 5


@pytest.mark.asyncio
async def test_limit_reads_a_page_of_the_log(storage: Storage) -> None:
    await storage.append_events("run-1", events(0, 1, 2, 3, 4))
    assert [e.seq for e in await storage.read_events("run-1", limit=2)] == [0, 1]
    assert [e.seq for e in await storage.read_events("run-1", 1, limit=2)] == [2, 3]
    assert [e.seq for e in await storage.read_events("run-1", 3, limit=2)] == [4]
    assert [e.seq for e in await storage.read_events("run-1", 1, limit=None)] == [2, 3, 4]


@pytest.mark.asyncio
async def test_reappending_a_stored_seq_is_ignored(storage: Storage) -> None:
    await storage.append_events("run-1", events(0, 1))
    retry = [StoredEvent(1, "finish", {"other": True}), *events(2)]
    await storage.append_events("run-1", retry)
    await storage.append_events("run-1", [])
    stored = await storage.read_events("run-1")
    assert [(e.seq, e.type) for e in stored] == [
        (0, "step-start"),
        (1, "step-start"),
        (2, "step-start"),
    ]
    assert stored[1].wire == events(1)[0].wire  # the first write wins


@pytest.mark.asyncio
async def test_runs_keep_their_own_events(storage: Storage) -> None:
    await storage.append_events("run-a", events(0, 1, run="run-a"))
    await storage.append_events("run-b", events(0, run="run-b"))
    assert [e.wire["runId"] for e in await storage.read_events("run-a")] == ["run-a", "run-a"]
    assert [e.wire["runId"] for e in await storage.read_events("run-b")] == ["run-b"]


@pytest.mark.asyncio
async def test_list_runs_newest_first_with_filters_and_limit(storage: Storage) -> None:
    await storage.save_run(snapshot("r1", workflow_id="a", status="success", updated_at=10))
    await storage.save_run(snapshot("r2", workflow_id="b", status="failed", updated_at=30))
    await storage.save_run(snapshot("r3", workflow_id="a", status="failed", updated_at=20))
    await storage.save_run(snapshot("r0", workflow_id="a", status="failed", updated_at=20))

    assert [r.run_id for r in await storage.list_runs()] == ["r2", "r0", "r3", "r1"]
    assert await storage.list_runs(workflow_id="a", status="failed") == [
        RunSummary("r0", "a", "failed", 20),
        RunSummary("r3", "a", "failed", 20),
    ]
    assert [r.run_id for r in await storage.list_runs(workflow_id="a")] == ["r0", "r3", "r1"]
    assert [r.run_id for r in await storage.list_runs(status="failed")] == ["r2", "r0", "r3"]
    assert [r.run_id for r in await storage.list_runs(limit=2)] == ["r2", "r0"]
    assert await storage.list_runs(workflow_id="missing") == []


@pytest.mark.asyncio
async def test_concurrent_appends_are_all_stored(storage: Storage) -> None:
    async def writer(run: str, first: int) -> None:
        for seq in range(first, first + 20, 2):
            await storage.append_events(run, events(seq, run=run))

    await asyncio.gather(
        *(writer(run, first) for run in ("run-a", "run-b") for first in (0, 1)),
        *(storage.save_run(snapshot(f"run-{i}", updated_at=i)) for i in range(5)),
    )
    for run in ("run-a", "run-b"):
        assert [e.seq for e in await storage.read_events(run)] == list(range(20))
    assert len(await storage.list_runs()) == 5


@pytest.mark.asyncio
async def test_data_survives_close_and_reopen(
    storage: Storage, storage_opener: Callable[[], Storage]
) -> None:
    saved = snapshot(status="success", result={"ok": True})
    await storage.save_run(saved)
    await storage.append_events("run-1", events(0, 1))
    await storage.close()

    reopened = storage_opener()
    try:
        assert await reopened.load_run("run-1") == saved
        assert [e.seq for e in await reopened.read_events("run-1")] == [0, 1]
        assert [r.run_id for r in await reopened.list_runs()] == ["run-1"]
    finally:
        await reopened.close()


def test_postgres_storage_outlives_its_event_loop(postgres_dsn: str) -> None:
    """One instance used from two loops in turn (``asyncio.run()`` twice) keeps working.

    Concurrent calls make the instance's lock bind to the running loop, so a lock or a
    connection carried over from the first loop would fail in the second.
    """
    store = PostgresStorage(postgres_dsn, schema="loops")

    async def append(first: int) -> None:
        await asyncio.gather(
            *(store.append_events("run-1", events(s)) for s in range(first, first + 5))
        )

    async def read_and_close() -> list[StoredEvent]:
        try:
            return await store.read_events("run-1")
        finally:
            await store.close()

    asyncio.run(append(0))
    asyncio.run(append(5))
    assert [e.seq for e in asyncio.run(read_and_close())] == list(range(10))


@pytest.mark.asyncio
async def test_postgres_schemas_are_kept_apart(postgres_dsn: str) -> None:
    first = PostgresStorage(postgres_dsn, schema="apart_one")
    second = PostgresStorage(postgres_dsn, schema="apart_two")
    try:
        await first.save_run(snapshot())
        await first.append_events("run-1", events(0))
        assert await second.load_run("run-1") is None
        assert await second.read_events("run-1") == []
        assert await first.load_run("run-1") == snapshot()
    finally:
        await first.close()
        await second.close()


@pytest.mark.asyncio
async def test_wire_key_order_survives(storage: Storage) -> None:
    """Mastra's key order is part of the wire format: a replayed event must keep it."""
    wire = {
        "type": "step-result",
        "payload": {"id": "s", "status": "success", "output": {"z": 1, "a": 2}, "endedAt": 5},
    }
    await storage.append_events("order", [StoredEvent(0, "step-result", wire)])
    [back] = await storage.read_events("order")
    assert list(back.wire) == ["type", "payload"]
    assert list(back.wire["payload"]) == ["id", "status", "output", "endedAt"]
    assert list(back.wire["payload"]["output"]) == ["z", "a"]
