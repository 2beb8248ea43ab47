"""The embedded default storage: SQLite in a file (stdlib ``sqlite3``, WAL mode).

Writes go through one connection on one writer thread (group commit: one transaction per
batch of checkpoints), reads through another connection on a reader thread, so a long replay
never holds up the runs' checkpoints and nothing blocks the event loop. Several processes may
share the file: SQLite's own locking serialises them (``busy_timeout``; a lock held longer is
retried a few times, then the write fails with :class:`~stepstream.errors.StorageError`), and
claims are compare-and-set transactions (``BEGIN IMMEDIATE``), so a run executes in one
process at a time.

**Following** (:meth:`~stepstream.storage.Storage.follow`) is single-host: the commits of this
storage instance wake its followers at once; those of other processes sharing the file are
found by reading the run's head every :attr:`SQLiteStorage.follow_recheck` seconds (0.1 s).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from ..errors import StorageError
from . import FINAL_STATUSES, Checkpoint, Claim, RunSnapshot, RunSummary, StoredEvent
from ._base import (
    Pending,
    StorageBase,
    Write,
    claim_refusal,
    now_ms,
    snapshot_of,
    stored_statuses,
    summaries,
)
from ._codec import decode, from_v1, path_key, prefix_bounds

__all__ = ["SCHEMA_VERSION", "SQLiteStorage"]

T = TypeVar("T")

SCHEMA_VERSION = 2
"""The layout of the tables; an older database is migrated when first opened."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS stepstream_schema (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS stepstream_runs (
    run_id TEXT PRIMARY KEY,
    workflow_id TEXT NOT NULL,
    status TEXT NOT NULL,
    input TEXT NOT NULL,
    runtime_context TEXT NOT NULL,
    meta TEXT NOT NULL,
    result TEXT NOT NULL,
    error TEXT,
    suspended TEXT NOT NULL,
    last_seq INTEGER NOT NULL,
    owner TEXT,
    lease_until INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS stepstream_runs_status ON stepstream_runs (status, updated_at);
CREATE INDEX IF NOT EXISTS stepstream_runs_workflow ON stepstream_runs (workflow_id, updated_at);
CREATE TABLE IF NOT EXISTS stepstream_records (
    run_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    ord INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (run_id, kind, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stepstream_events (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    wire TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
"""

_HEAD = (
    "SELECT workflow_id, status, input, runtime_context, meta, result, error, suspended,"
    " last_seq, owner, lease_until, created_at, updated_at FROM stepstream_runs WHERE run_id = ?"
)
_CHECKPOINT = (
    "UPDATE stepstream_runs SET status = ?, last_seq = ?, result = ?, error = ?, suspended = ?,"
    " runtime_context = COALESCE(?, runtime_context), meta = COALESCE(?, meta),"
    " owner = CASE WHEN ? THEN NULL ELSE owner END, lease_until = ?, updated_at = ?"
    " WHERE run_id = ? AND owner = ?"
)
_RECORD = (
    "INSERT INTO stepstream_records (run_id, kind, key, ord, data) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (run_id, kind, key) DO UPDATE SET data = excluded.data"
)
_CREATE = (
    "INSERT INTO stepstream_runs VALUES"
    " (?, ?, 'running', ?, ?, '{}', 'null', NULL, '[]', -1, ?, ?, ?, ?)"
    " ON CONFLICT (run_id) DO UPDATE SET status = 'running', input = excluded.input,"
    " runtime_context = excluded.runtime_context, owner = excluded.owner,"
    " lease_until = excluded.lease_until, updated_at = excluded.updated_at"
    " WHERE stepstream_runs.status = 'pending'"
    " AND stepstream_runs.workflow_id = excluded.workflow_id"
)  # a new run, or a pending one of its workflow (created, never started): one start takes it
_PENDING = (
    "INSERT INTO stepstream_runs VALUES"
    " (?, ?, 'pending', 'null', '{}', '{}', 'null', NULL, '[]', -1, NULL, 0, ?, ?)"
    " ON CONFLICT (run_id) DO NOTHING"
)
_EVENT = "INSERT OR IGNORE INTO stepstream_events (run_id, seq, type, wire) VALUES (?, ?, ?, ?)"


class SQLiteStorage(StorageBase):
    """Runs and their events in an SQLite file (``":memory:"`` for a throwaway store).

    :param lease_seconds: How long a claim holds without renewal (renewed meanwhile).
    :param durability: ``"async"`` (the default): a step's checkpoint is written in the
        background while the run goes on (grouped with others); ``"sync"``: each step waits
        until its checkpoint is committed. Either way a run's end, a suspension and a sleep's
        start are committed before the run reports them, and a consumer of ``Run.stream()``
        is shown an event only once it is committed.
    :param busy_timeout: Seconds to wait for another process's write lock, per attempt.
    """

    follow_recheck = 0.1  # other processes' commits are polled for (see the module docstring)

    def __init__(
        self,
        path: str | Path = "stepstream.db",
        *,
        lease_seconds: float = 30.0,
        durability: str = "async",
        busy_timeout: float = 5.0,
    ) -> None:
        super().__init__(lease_seconds=lease_seconds, durability=durability)
        self.path = str(path)
        self.busy_timeout = busy_timeout
        self._writer_thread = ThreadPoolExecutor(1, thread_name_prefix="stepstream-sqlite-w")
        self._reader_thread = ThreadPoolExecutor(1, thread_name_prefix="stepstream-sqlite-r")
        self._conns: dict[str, sqlite3.Connection] = {}

    # -- connections -------------------------------------------------------------------------

    def _connect(self, role: str) -> sqlite3.Connection:
        conn = self._conns.get(role)
        if conn is not None:
            return conn
        if self.path == ":memory:" and role == "r":  # one in-memory database: one connection
            return self._connect("w")
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        if role == "w" or "w" not in self._conns:
            _migrate(conn)
        self._conns[role] = conn
        return conn

    async def _on(self, role: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        pool = (
            self._writer_thread if role == "w" or self.path == ":memory:" else self._reader_thread
        )
        try:
            future = loop.run_in_executor(pool, lambda: fn(self._connect(role)))
        except RuntimeError as exc:  # the thread pool is shut down: the storage was closed
            raise StorageError(f"the SQLite storage {self.path} is closed") from exc
        return await future

    def _transient(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.OperationalError) and (
            "locked" in str(exc) or "busy" in str(exc)
        )

    # -- writes ------------------------------------------------------------------------------

    async def _claim_now(self, claim: Claim, now: int) -> None:
        def write(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                row = conn.execute(
                    "SELECT status, owner, lease_until, last_seq FROM stepstream_runs"
                    " WHERE run_id = ?",
                    (claim.run_id,),
                ).fetchone()
                refusal = claim_refusal(claim, row, now)
                if refusal is not None:
                    raise refusal
                if claim.create is not None:
                    conn.execute(_CREATE, _created(claim, now))
                else:
                    conn.execute(
                        "UPDATE stepstream_runs SET status = 'running', owner = ?,"
                        " lease_until = ?, updated_at = ? WHERE run_id = ?",
                        (claim.owner, claim.lease_until, now, claim.run_id),
                    )
                self._crash("claim.before-commit")
            self._crash("claim.after-commit")

        await self._on("w", write)

    async def _write_batch(self, batch: Sequence[Write], now: int) -> set[int]:
        lease = now + int(self.lease_seconds * 1000)
        claims = any(isinstance(item, Claim) for item in batch)
        checkpoints = any(isinstance(item, Checkpoint) for item in batch)

        def write(conn: sqlite3.Connection) -> set[int]:
            lost: set[int] = set()
            with _transaction(conn):
                conn.executemany(
                    _PENDING,
                    [(p.run_id, p.workflow_id, now, now) for p in batch if isinstance(p, Pending)],
                )
                records, events = [], []
                for i, cp in enumerate(batch):
                    if isinstance(cp, Pending):
                        continue
                    if isinstance(cp, Claim):
                        if not conn.execute(_CREATE, _created(cp, now)).rowcount:
                            lost.add(i)
                        continue
                    updated = conn.execute(
                        _CHECKPOINT,
                        (cp.status, cp.last_seq, cp.result, cp.error, cp.suspended,
                         cp.runtime_context, cp.meta, cp.release, 0 if cp.release else lease,
                         now, cp.run_id, cp.owner),
                    ).rowcount  # fmt: skip
                    if not updated:
                        lost.add(i)
                        continue
                    for path in cp.dropped:
                        low, high = prefix_bounds(path)
                        conn.execute(
                            "DELETE FROM stepstream_records"
                            " WHERE run_id = ? AND key >= ? AND key < ?",
                            (cp.run_id, low, high),
                        )
                    records += [
                        (cp.run_id, r.kind, path_key(r.path), r.order, r.data) for r in cp.records
                    ]
                    events += [(cp.run_id, seq, kind, wire) for seq, kind, wire in cp.events]
                conn.executemany(_RECORD, records)
                conn.executemany(_EVENT, events)
                self._crash_around(claims, checkpoints, "before")
            self._crash_around(claims, checkpoints, "after")
            return lost

        return await self._on("w", write)

    async def _renew_now(self, held: Sequence[tuple[str, str]], lease_until: int) -> None:
        def write(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                conn.executemany(
                    "UPDATE stepstream_runs SET lease_until = ?"
                    " WHERE run_id = ? AND owner = ? AND status = 'running'",
                    [(lease_until, run_id, owner) for run_id, owner in held],
                )

        await self._on("w", write)

    async def _release_now(self, run_id: str, owner: str, now: int) -> None:
        def write(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                conn.execute(
                    "UPDATE stepstream_runs SET owner = NULL, lease_until = 0, updated_at = ?"
                    " WHERE run_id = ? AND owner = ?",
                    (now, run_id, owner),
                )
                self._crash("release.before-commit")

        await self._on("w", write)

    # -- reads -------------------------------------------------------------------------------

    async def load_run(self, run_id: str) -> RunSnapshot | None:
        def read(conn: sqlite3.Connection) -> tuple[Any, list[Any]] | None:
            head = conn.execute(_HEAD, (run_id,)).fetchone()
            if head is None:
                return None
            rows = conn.execute(
                "SELECT kind, key, ord, data FROM stepstream_records WHERE run_id = ?", (run_id,)
            ).fetchall()
            return head, rows

        found = await self._on("r", read)
        return None if found is None else snapshot_of(run_id, *found)

    async def _head_now(self, run_id: str) -> tuple[str, int] | None:
        def read(conn: sqlite3.Connection) -> tuple[str, int] | None:
            row = conn.execute(
                "SELECT status, last_seq FROM stepstream_runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            return None if row is None else (row[0], row[1])

        return await self._on("r", read)

    async def read_events(
        self, run_id: str, after_seq: int = -1, *, limit: int | None = None
    ) -> list[StoredEvent]:
        def read(conn: sqlite3.Connection) -> list[tuple[int, str, str]]:
            return conn.execute(
                "SELECT seq, type, wire FROM stepstream_events"
                " WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                (run_id, _bounded(after_seq), -1 if limit is None else max(limit, 0)),
            ).fetchall()

        rows = await self._on("r", read)
        return [StoredEvent(seq, kind, decode(wire)) for seq, kind, wire in rows]

    async def list_runs(
        self,
        *,
        workflow_id: str | None = None,
        status: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[RunSummary]:
        now = now_ms()
        wanted = None if status is None else [status]
        # running and interrupted runs are told apart after the query (leases, local pids)
        sift = status in ("running", "interrupted")

        def read(conn: sqlite3.Connection) -> list[tuple[str, str, str, str | None, int, int]]:
            sql = (
                "SELECT run_id, workflow_id, status, owner, lease_until, updated_at"
                " FROM stepstream_runs"
            )
            where: list[str] = []
            args: list[Any] = []
            if wanted is not None:
                where.append("status = ?")
                args += stored_statuses(wanted)
            if workflow_id is not None:
                where.append("workflow_id = ?")
                args.append(workflow_id)
            if where:
                sql += " WHERE " + " AND ".join(where)
            sql += " ORDER BY updated_at DESC, run_id"
            if not sift:
                sql += " LIMIT ? OFFSET ?"
                args += [max(limit, 0), max(offset, 0)]
            return conn.execute(sql, args).fetchall()

        found = summaries(await self._on("r", read), wanted, now)
        return found[max(offset, 0) : max(offset, 0) + max(limit, 0)] if sift else found

    async def prune(self, *, older_than: float, statuses: Sequence[str] = FINAL_STATUSES) -> int:
        now = now_ms()
        cutoff = now - int(older_than * 1000)
        stored = stored_statuses(statuses)
        if not stored:
            return 0

        def write(conn: sqlite3.Connection) -> int:
            with _transaction(conn):
                rows = conn.execute(
                    "SELECT run_id, workflow_id, status, owner, lease_until, updated_at"
                    " FROM stepstream_runs WHERE updated_at < ? AND status IN"
                    f" ({','.join('?' * len(stored))})",
                    (cutoff, *stored),
                ).fetchall()
                ids = [(s.run_id,) for s in summaries(rows, statuses, now)]
                for table in ("stepstream_events", "stepstream_records", "stepstream_runs"):
                    conn.executemany(f"DELETE FROM {table} WHERE run_id = ?", ids)
            return len(ids)

        return await self._on("w", write)

    async def close(self) -> None:
        await self._stop_background()

        def shut(role: str) -> Callable[[sqlite3.Connection], None]:
            def close(conn: sqlite3.Connection) -> None:
                conn.close()
                del self._conns[role]

            return close

        for role in list(self._conns):
            if role in self._conns:
                await self._on(role, shut(role))
        self._writer_thread.shutdown(wait=True)
        self._reader_thread.shutdown(wait=True)


class _transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on any error), on a connection in
    autocommit mode: the write lock is taken up front, so a claim's check and set are one."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, *rest: object) -> None:
        self.conn.execute("COMMIT" if kind is None else "ROLLBACK")


def _created(claim: Claim, now: int) -> tuple[Any, ...]:
    """The parameters of :data:`_CREATE` for a claim that creates its run."""
    assert claim.create is not None
    workflow_id, input_json, context_json = claim.create
    return (claim.run_id, workflow_id, input_json, context_json, claim.owner, claim.lease_until,
            now, now)  # fmt: skip


def _bounded(n: int) -> int:
    # SQLite integers are 64-bit: clamp what a client may send (after=10**30).
    return max(min(n, 2**63 - 1), -(2**63))


def _migrate(conn: sqlite3.Connection) -> None:
    """Create the tables, or bring an older layout to :data:`SCHEMA_VERSION`."""
    columns = [r[1] for r in conn.execute("PRAGMA table_info(stepstream_runs)")]
    with _transaction(conn):
        if "snapshot" in columns:  # version 1: one JSON snapshot per run, rewritten whole
            conn.execute("ALTER TABLE stepstream_runs RENAME TO stepstream_runs_v1")
            conn.execute("DROP INDEX IF EXISTS stepstream_runs_status")
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        if "snapshot" in columns:
            old = conn.execute("SELECT snapshot FROM stepstream_runs_v1").fetchall()
            for (text,) in old:
                head, records = from_v1(decode(text))
                conn.execute(
                    "INSERT INTO stepstream_runs VALUES (" + ",".join("?" * 14) + ")", head
                )
                conn.executemany(_RECORD, [(head[0], *r) for r in records])
            conn.execute("DROP TABLE stepstream_runs_v1")
        if conn.execute("SELECT count(*) FROM stepstream_schema").fetchone()[0] == 0:
            conn.execute("INSERT INTO stepstream_schema VALUES (?)", (SCHEMA_VERSION,))
        else:
            conn.execute("UPDATE stepstream_schema SET version = ?", (SCHEMA_VERSION,))
