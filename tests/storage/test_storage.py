"""The storage contract, run on every backend through the ``storage`` fixture."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stepstream.errors import RunClaimedError
from stepstream.storage import Checkpoint, Claim, RunSummary, Storage, StoredEvent, StoredRecord
from stepstream.storage.postgres import PostgresStorage
from stepstream.storage.sqlite import SQLiteStorage

NESTED_OUTPUT: dict[str, Any] = {"items": [1, 2.5, None, True, "ünïcødé ✓"], "emoji": "🚀 日本語"}


def now() -> int:
    return time.time_ns() // 1_000_000


def claim(run_id: str = "run-1", owner: str = "me", **changes: Any) -> Claim:
    fields: dict[str, Any] = {
        "run_id": run_id,
        "owner": owner,
        "lease_until": now() + 60_000,
        "create": ("wf", json.dumps({"x": 1}), json.dumps({"user": "Zoë"})),
    }
    return Claim(**(fields | changes))


def record(path: tuple[str, ...], order: int, **data: Any) -> StoredRecord:
    return StoredRecord("step", path, order, json.dumps({"status": "success", **data}))


def events(*seqs: int, run: str = "run-1") -> list[tuple[int, str, str]]:
    return [
        (seq, "step-start", json.dumps({"runId": run, "seq": seq, "payload": {"x": [seq, None]}}))
        for seq in seqs
    ]


def checkpoint(run_id: str = "run-1", owner: str = "me", **changes: Any) -> Checkpoint:
    fields: dict[str, Any] = {"run_id": run_id, "owner": owner, "status": "running", "last_seq": -1}
    return Checkpoint(**(fields | changes))


def test_backends_are_storages(storage: Storage) -> None:
    assert isinstance(storage, Storage)


@pytest.mark.asyncio
async def test_a_new_run_is_stored_when_claimed(storage: Storage) -> None:
    await storage.claim(claim())
    loaded = await storage.load_run("run-1")
    assert loaded is not None
    assert (loaded.status, loaded.owner, loaded.last_seq) == ("running", "me", -1)
    assert loaded.state == {"input": {"x": 1}, "steps": {}, "nested": {}, "meta": {}}
    assert loaded.runtime_context == {"user": "Zoë"}
    assert loaded.created_at > 0


@pytest.mark.asyncio
async def test_checkpoints_build_the_state_incrementally(storage: Storage) -> None:
    await storage.claim(claim())
    await storage.save_checkpoint(
        checkpoint(last_seq=2, events=events(0, 1, 2), records=[record(("a",), 0, output=1)])
    )
    nested = StoredRecord("nested", ("inner",), 3, json.dumps({"n": 1}))
    await storage.save_checkpoint(
        checkpoint(
            last_seq=4,
            events=events(3, 4),
            records=[record(("b",), 3, output=NESTED_OUTPUT), nested,
                     record(("inner", "x"), 4, output=2)],
            runtime_context=json.dumps({"user": "Zoë", "n": 2}),
        )
    )  # fmt: skip
    # An upsert keeps a record's first place (as a dict keeps a key's first position).
    await storage.save_checkpoint(
        checkpoint(
            status="success",
            last_seq=5,
            events=events(5),
            records=[record(("a",), 5, output=3)],
            result=json.dumps({"ok": ["ja", None]}),
            release=True,
            meta=json.dumps({"usage": {"total": 3}}),
        )
    )
    loaded = await storage.load_run("run-1")
    assert loaded is not None
    assert (loaded.status, loaded.owner, loaded.last_seq) == ("success", None, 5)
    assert list(loaded.state["steps"]) == ["a", "b"]
    assert loaded.state["steps"]["a"] == {"status": "success", "output": 3}
    assert loaded.state["steps"]["b"]["output"] == NESTED_OUTPUT
    assert loaded.state["nested"] == {
        "inner": {"input": {"n": 1}, "steps": {"x": {"status": "success", "output": 2}},
                  "nested": {}}
    }  # fmt: skip
    assert loaded.result == {"ok": ["ja", None]}
    assert loaded.runtime_context == {"user": "Zoë", "n": 2}
    assert loaded.meta == {"usage": {"total": 3}} == loaded.state["meta"]
    assert [e.seq for e in await storage.read_events("run-1")] == [0, 1, 2, 3, 4, 5]


@pytest.mark.asyncio
async def test_a_nested_workflow_started_again_drops_what_was_below_it(storage: Storage) -> None:
    await storage.claim(claim())
    first = StoredRecord("nested", ("loop",), 0, json.dumps(1))
    await storage.save_checkpoint(
        checkpoint(records=[first, record(("loop", "a"), 1), record(("loop", "b"), 2),
                            record(("loopy",), 3)])
    )  # fmt: skip
    again = StoredRecord("nested", ("loop",), 4, json.dumps(2))
    await storage.save_checkpoint(
        checkpoint(dropped=[("loop",)], records=[again, record(("loop", "c"), 5)])
    )
    loaded = await storage.load_run("run-1")
    assert loaded is not None
    assert loaded.state["nested"]["loop"]["input"] == 2
    assert list(loaded.state["nested"]["loop"]["steps"]) == ["c"]
    assert list(loaded.state["steps"]) == ["loopy"]  # a sibling sharing the prefix stays


@pytest.mark.asyncio
async def test_a_run_is_created_once(storage: Storage) -> None:
    await storage.claim(claim())
    with pytest.raises(RunClaimedError, match="run-1 already exists"):
        await storage.claim(claim(owner="other"))


@pytest.mark.asyncio
async def test_new_runs_claimed_at_once_share_a_transaction_and_one_run_has_one_creator(
    storage: Storage,
) -> None:
    # Claims that create runs are grouped into one write: every distinct run is created, a
    # run claimed twice in the same group is created once, by the first claimant, and every
    # checkpoint queued beside them is stored.
    await storage.claim(claim("old"))
    outcomes = await asyncio.gather(
        storage.claim(claim("a")),
        storage.claim(claim("dup", owner="first")),
        storage.save_checkpoint(checkpoint("old", last_seq=0, events=events(0, run="old"))),
        storage.claim(claim("dup", owner="second")),
        storage.claim(claim("b")),
        return_exceptions=True,
    )
    assert outcomes[:3] == [None, None, None] and outcomes[4] is None
    assert isinstance(outcomes[3], RunClaimedError) and "dup already exists" in str(outcomes[3])
    for run_id in ("a", "b", "dup"):
        loaded = await storage.load_run(run_id)
        assert loaded is not None and loaded.status == "running"
    dup = await storage.load_run("dup")
    assert dup is not None and dup.owner == "first"
    assert [e.seq for e in await storage.read_events("old")] == [0]


@pytest.mark.asyncio
async def test_a_live_claim_refuses_others_and_names_its_owner(storage: Storage) -> None:
    await storage.claim(claim())
    with pytest.raises(RunClaimedError, match="being executed by me") as caught:
        await storage.claim(claim(owner="other", create=None, expect=("interrupted",)))
    assert caught.value.owner == "me"
    # Only the owner's checkpoints are taken.
    with pytest.raises(RunClaimedError, match="no longer held"):
        await storage.save_checkpoint(checkpoint(owner="other", last_seq=0, events=events(0)))
    assert await storage.read_events("run-1") == []


@pytest.mark.asyncio
async def test_an_expired_lease_reads_interrupted_and_is_claimable_once(storage: Storage) -> None:
    await storage.claim(claim(lease_until=now() - 1))  # its owner died at once
    await storage.save_checkpoint(checkpoint(last_seq=1, events=events(0, 1)))
    # A checkpoint renews the lease: expire it again, as a dead owner's would.
    await storage.claim(claim(owner="me", create=None, expect=(), lease_until=now() - 1))
    loaded = await storage.load_run("run-1")
    assert loaded is not None and loaded.status == "interrupted"
    assert [r.run_id for r in await storage.list_runs(status="interrupted")] == ["run-1"]
    assert await storage.list_runs(status="running") == []

    stale = claim(owner="late", create=None, expect=("interrupted",), expect_seq=0)
    with pytest.raises(RunClaimedError, match="changed in storage"):
        await storage.claim(stale)
    winner = claim(owner="recoverer", create=None, expect=("interrupted",), expect_seq=1)
    await storage.claim(winner)
    with pytest.raises(RunClaimedError, match="being executed by recoverer"):
        await storage.claim(claim(owner="third", create=None, expect=("interrupted",)))
    with pytest.raises(RunClaimedError):  # the dead owner's late write is refused
        await storage.save_checkpoint(checkpoint(owner="me", last_seq=2, events=events(2)))
    await storage.save_checkpoint(checkpoint(owner="recoverer", last_seq=2, events=events(2)))
    assert [e.seq for e in await storage.read_events("run-1")] == [0, 1, 2]


@pytest.mark.asyncio
async def test_released_runs_read_interrupted_at_once(storage: Storage) -> None:
    await storage.claim(claim())
    await storage.release("run-1", "me")
    loaded = await storage.load_run("run-1")
    assert loaded is not None and (loaded.status, loaded.owner) == ("interrupted", None)


@pytest.mark.asyncio
async def test_claims_expect_a_status(storage: Storage) -> None:
    await storage.claim(claim())
    await storage.save_checkpoint(checkpoint(status="success", release=True))
    with pytest.raises(RunClaimedError, match="has ended 'success'"):
        await storage.claim(claim(owner="x", create=None, expect=("suspended",)))
    with pytest.raises(RunClaimedError, match="unknown"):
        await storage.claim(claim("nope", create=None, expect=("suspended",)))


@pytest.mark.asyncio
async def test_concurrent_checkpoints_of_many_runs_are_all_stored(storage: Storage) -> None:
    async def one(run: str) -> None:
        await storage.claim(claim(run))
        for seq in range(10):
            await storage.save_checkpoint(
                checkpoint(run, last_seq=seq, events=events(seq, run=run),
                           records=[record((f"s{seq}",), seq)])
            )  # fmt: skip

    async def intruder() -> None:
        with pytest.raises(RunClaimedError):
            await storage.save_checkpoint(checkpoint("r0", owner="intruder", events=events(99)))

    await asyncio.gather(*(one(f"r{i}") for i in range(20)), intruder())
    for i in range(20):
        assert [e.seq for e in await storage.read_events(f"r{i}")] == list(range(10))
        loaded = await storage.load_run(f"r{i}")
        assert loaded is not None and len(loaded.state["steps"]) == 10
    assert len(await storage.list_runs()) == 20


@pytest.mark.asyncio
async def test_events_after_a_seq_with_a_limit(storage: Storage) -> None:
    await storage.claim(claim())
    await storage.save_checkpoint(checkpoint(last_seq=4, events=events(0, 1, 2, 3, 4)))
    assert [e.seq for e in await storage.read_events("run-1", after_seq=2)] == [3, 4]
    assert [e.seq for e in await storage.read_events("run-1", 0, limit=2)] == [1, 2]
    assert await storage.read_events("run-1", 0, limit=0) == []
    assert await storage.read_events("run-1", after_seq=10**30) == []
    assert len(await storage.read_events("run-1", after_seq=-(10**30))) == 5
    first = (await storage.read_events("run-1"))[1]
    assert first == StoredEvent(1, "step-start", json.loads(events(1)[0][2]))
    assert await storage.read_events("nope") == []


@pytest.mark.asyncio
async def test_list_runs_newest_first_with_filters_limit_and_offset(storage: Storage) -> None:
    for run_id, wf, status in [("r1", "a", "success"), ("r2", "b", "failed"),
                               ("r3", "a", "failed"), ("r0", "a", "failed")]:  # fmt: skip
        await storage.claim(claim(run_id, create=(wf, "null", "{}")))
        await storage.save_checkpoint(checkpoint(run_id, status=status, release=True))
    listed = await storage.list_runs()
    newest_first = sorted(listed, key=lambda r: (-r.updated_at, r.run_id))
    assert listed == newest_first and {r.run_id for r in listed} == {"r0", "r1", "r2", "r3"}
    order = [r.run_id for r in listed]
    failed_a = [r.run_id for r in await storage.list_runs(workflow_id="a", status="failed")]
    assert failed_a == [r for r in order if r in ("r0", "r3")]
    failed = [r.run_id for r in await storage.list_runs(status="failed")]
    assert failed == [r for r in order if r != "r1"]
    assert [r.run_id for r in await storage.list_runs(limit=2, offset=1)] == order[1:3]
    assert await storage.list_runs(workflow_id="missing") == []
    assert isinstance(listed[0], RunSummary) and listed[0].workflow_id == "a"


@pytest.mark.asyncio
async def test_prune_deletes_old_runs_in_the_given_statuses(storage: Storage) -> None:
    for run_id, status in [("done", "success"), ("kept", "suspended"), ("live", "running")]:
        await storage.claim(claim(run_id))
        await storage.save_checkpoint(
            checkpoint(run_id, status=status, last_seq=0, events=events(0, run=run_id),
                       records=[record(("a",), 0)], release=status != "running")
        )  # fmt: skip
    assert await storage.prune(older_than=3600) == 0  # all too recent
    assert await storage.prune(older_than=-1) == 1  # only the final one by default
    assert await storage.load_run("done") is None
    assert await storage.read_events("done") == []
    assert sorted(r.run_id for r in await storage.list_runs()) == ["kept", "live"]
    assert await storage.prune(older_than=-1, statuses=["suspended", "interrupted"]) == 1
    assert [r.run_id for r in await storage.list_runs()] == ["live"]


@pytest.mark.asyncio
async def test_data_survives_close_and_reopen(
    storage: Storage, storage_opener: Callable[[], Storage]
) -> None:
    await storage.claim(claim())
    await storage.save_checkpoint(
        checkpoint(status="success", last_seq=1, events=events(0, 1), release=True,
                   records=[record(("a",), 0, output=NESTED_OUTPUT)])
    )  # fmt: skip
    saved = await storage.load_run("run-1")
    await storage.close()
    reopened = storage_opener()
    try:
        assert await reopened.load_run("run-1") == saved
        assert [e.seq for e in await reopened.read_events("run-1")] == [0, 1]
    finally:
        await reopened.close()


@pytest.mark.asyncio
async def test_wire_key_order_survives(storage: Storage) -> None:
    """Mastra's key order is part of the wire format: a replayed event must keep it."""
    wire = {
        "type": "step-result",
        "payload": {"id": "s", "status": "success", "output": {"z": 1, "a": 2}, "endedAt": 5},
    }
    await storage.claim(claim("order"))
    await storage.save_checkpoint(
        checkpoint("order", last_seq=0, events=[(0, "step-result", json.dumps(wire))])
    )
    [back] = await storage.read_events("order")
    assert list(back.wire) == ["type", "payload"]
    assert list(back.wire["payload"]) == ["id", "status", "output", "endedAt"]
    assert list(back.wire["payload"]["output"]) == ["z", "a"]


V1_SNAPSHOT = {
    "run_id": "old-1",
    "workflow_id": "wf",
    "status": "suspended",
    "state": {
        "input": {"x": 1},
        "steps": {"a": {"payload": {"x": 1}, "started_at": 1, "status": "success", "output": 2}},
        "nested": {"inner": {"input": 2, "steps": {"b": {"status": "suspended"}}, "nested": {}}},
    },
    "result": None,
    "error": None,
    "suspended": [["inner", "b"]],
    "runtime_context": {"k": "v"},
    "last_seq": 7,
    "updated_at": 1_000,
}


@pytest.mark.asyncio
async def test_a_version_1_sqlite_database_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # the tables as schema version 1 made them
        conn.executescript(
            "CREATE TABLE stepstream_runs (run_id TEXT PRIMARY KEY, workflow_id TEXT NOT NULL,"
            " status TEXT NOT NULL, snapshot TEXT NOT NULL, updated_at INTEGER NOT NULL);"
            "CREATE INDEX stepstream_runs_status ON stepstream_runs (status, updated_at);"
            "CREATE TABLE stepstream_events (run_id TEXT NOT NULL, seq INTEGER NOT NULL,"
            " type TEXT NOT NULL, wire TEXT NOT NULL, PRIMARY KEY (run_id, seq)) WITHOUT ROWID;"
        )
        conn.execute(
            "INSERT INTO stepstream_runs VALUES ('old-1', 'wf', 'suspended', ?, 1000)",
            (json.dumps(V1_SNAPSHOT),),
        )
        conn.execute("INSERT INTO stepstream_events VALUES ('old-1', 0, 'start', '{\"a\":1}')")
    store = SQLiteStorage(path)
    try:
        await check_migrated(store)
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM stepstream_schema").fetchall() == [(2,)]


@pytest.mark.asyncio
async def test_a_version_1_postgres_database_is_migrated(postgres_dsn: str) -> None:
    import psycopg
    from psycopg.types.json import Json

    async with await psycopg.AsyncConnection.connect(postgres_dsn, autocommit=True) as conn:
        await conn.execute("CREATE SCHEMA v1old")
        await conn.execute(
            "CREATE TABLE v1old.stepstream_runs (run_id TEXT PRIMARY KEY, workflow_id TEXT,"
            " status TEXT, snapshot JSON NOT NULL, updated_at BIGINT)"
        )
        await conn.execute(
            "CREATE TABLE v1old.stepstream_events (run_id TEXT, seq BIGINT, type TEXT,"
            " wire JSON, PRIMARY KEY (run_id, seq))"
        )
        await conn.execute(
            "INSERT INTO v1old.stepstream_runs VALUES ('old-1', 'wf', 'suspended', %s, 1000)",
            (Json(V1_SNAPSHOT),),
        )
        await conn.execute(
            "INSERT INTO v1old.stepstream_events VALUES ('old-1', 0, 'start', '{\"a\":1}')"
        )
    store = PostgresStorage(postgres_dsn, schema="v1old")
    try:
        await check_migrated(store)
    finally:
        await store.close()


async def check_migrated(store: Storage) -> None:
    loaded = await store.load_run("old-1")
    assert loaded is not None
    assert (loaded.status, loaded.last_seq, loaded.suspended) == ("suspended", 7, [["inner", "b"]])
    assert loaded.state["steps"] == V1_SNAPSHOT["state"]["steps"]  # type: ignore[index]
    assert loaded.state["nested"]["inner"]["steps"] == {"b": {"status": "suspended"}}
    assert loaded.runtime_context == {"k": "v"}
    assert [e.wire for e in await store.read_events("old-1")] == [{"a": 1}]


def test_postgres_storage_outlives_its_event_loop(postgres_dsn: str) -> None:
    """One instance used from two loops in turn (``asyncio.run()`` twice) keeps working."""
    store = PostgresStorage(postgres_dsn, schema="loops")

    async def write(first: int) -> None:
        if first == 0:
            await store.claim(claim())
        await store.save_checkpoint(
            checkpoint(last_seq=first + 4, events=events(*range(first, first + 5)))
        )

    async def read_and_close() -> list[StoredEvent]:
        try:
            return await store.read_events("run-1")
        finally:
            await store.close()

    asyncio.run(write(0))
    asyncio.run(write(5))
    assert [e.seq for e in asyncio.run(read_and_close())] == list(range(10))


def test_postgres_storage_closes_its_pool_as_its_loop_ends(postgres_dsn: str) -> None:
    """``asyncio.run()`` cancels every task at its end: the pool is closed then, in its own
    loop, rather than left to workers that may outlive the cancellation."""
    store = PostgresStorage(postgres_dsn, schema="loop_end")
    pools = []

    async def use() -> None:
        assert await store.load_run("nobody") is None
        pools.append(store._pool)

    asyncio.run(use())
    assert pools[0] is not None and pools[0].closed and store._pool is None
    asyncio.run(use())  # a new loop, a new pool
    assert pools[1] is not pools[0] and pools[1] is not None and pools[1].closed
    asyncio.run(store.close())


@pytest.mark.asyncio
async def test_postgres_schemas_are_kept_apart(postgres_dsn: str) -> None:
    first = PostgresStorage(postgres_dsn, schema="apart_one")
    second = PostgresStorage(postgres_dsn, schema="apart_two")
    try:
        await first.claim(claim())
        assert await second.load_run("run-1") is None
        assert await first.load_run("run-1") is not None
    finally:
        await first.close()
        await second.close()


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        -0.0,
        0.1,
        1e16,
        2**70,
        'ünï\n"\\\u2028 🚀',
        [1, (2, 3), []],
        {"a": {"b": [None, 1.5]}, 1: 2, False: 3, None: 4, 2.5: 5, "": {}},
    ],
)
def test_values_are_encoded_as_the_standard_json_text(value: Any) -> None:
    # The codec's encoder is CPython's C encoder built once: its text must be json.dumps's.
    from stepstream.storage._codec import encode

    expected = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    assert encode(value, "the value") == expected


def test_a_value_that_refers_to_itself_is_refused_naming_where() -> None:
    from stepstream.errors import StorageError
    from stepstream.storage._codec import encode

    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(StorageError, match=r"\['k'\]\[0\] refers to itself"):
        encode({"k": loop}, "the value")
