"""The embedded default storage: SQLite in a file (stdlib ``sqlite3``, WAL mode).

One connection is used by one worker thread, so writes are serialised without locks and never
run on the event loop (measured here, a single writer thread beats aiosqlite by 2.5x). Several
processes may share the file: SQLite's own locking serialises them (``busy_timeout``).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from . import RunSnapshot, RunSummary, StoredEvent

__all__ = ["SQLiteStorage"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS stepstream_runs (
    run_id TEXT PRIMARY KEY,
    workflow_id TEXT NOT NULL,
    status TEXT NOT NULL,
    snapshot TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS stepstream_runs_status ON stepstream_runs (status, updated_at);
CREATE TABLE IF NOT EXISTS stepstream_events (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    wire TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
"""


class SQLiteStorage:
    """Runs and their events in an SQLite file (``":memory:"`` for a throwaway store)."""

    def __init__(self, path: str | Path = "stepstream.db") -> None:
        self.path = str(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stepstream-sqlite")
        self._conn: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=10000")
            conn.executescript(_SCHEMA)
            self._conn = conn
        return self._conn

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(self._connect()))

    async def save_run(self, snapshot: RunSnapshot) -> None:
        data = json.dumps(_snapshot_to_json(snapshot))
        updated = snapshot.updated_at or time.time_ns() // 1_000_000

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO stepstream_runs (run_id, workflow_id, status, snapshot, updated_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (run_id) DO UPDATE SET"
                " workflow_id = excluded.workflow_id, status = excluded.status,"
                " snapshot = excluded.snapshot, updated_at = excluded.updated_at",
                (snapshot.run_id, snapshot.workflow_id, snapshot.status, data, updated),
            )

        await self._run(write)

    async def load_run(self, run_id: str) -> RunSnapshot | None:
        def read(conn: sqlite3.Connection) -> Any:
            row = conn.execute(
                "SELECT snapshot FROM stepstream_runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            return row[0] if row else None

        data = await self._run(read)
        return None if data is None else _snapshot_from_json(json.loads(data))

    async def append_events(self, run_id: str, events: list[StoredEvent]) -> None:
        if not events:
            return
        rows = [(run_id, e.seq, e.type, json.dumps(e.wire)) for e in events]

        def write(conn: sqlite3.Connection) -> None:
            # One transaction for the batch (the connection is in autocommit mode).
            conn.execute("BEGIN")
            try:
                conn.executemany(
                    "INSERT OR IGNORE INTO stepstream_events (run_id, seq, type, wire)"
                    " VALUES (?, ?, ?, ?)",
                    rows,
                )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

        await self._run(write)

    async def read_events(
        self, run_id: str, after_seq: int = -1, *, limit: int | None = None
    ) -> list[StoredEvent]:
        def read(conn: sqlite3.Connection) -> list[tuple[int, str, str]]:
            return conn.execute(
                "SELECT seq, type, wire FROM stepstream_events"
                " WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                (run_id, after_seq, -1 if limit is None else limit),
            ).fetchall()

        rows = await self._run(read)
        return [StoredEvent(seq, kind, json.loads(wire)) for seq, kind, wire in rows]

    async def list_runs(
        self, *, workflow_id: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[RunSummary]:
        def read(conn: sqlite3.Connection) -> list[tuple[str, str, str, int]]:
            sql = "SELECT run_id, workflow_id, status, updated_at FROM stepstream_runs"
            where, args = [], []
            if workflow_id is not None:
                where.append("workflow_id = ?")
                args.append(workflow_id)
            if status is not None:
                where.append("status = ?")
                args.append(status)
            if where:
                sql += " WHERE " + " AND ".join(where)
            sql += " ORDER BY updated_at DESC, run_id LIMIT ?"
            return conn.execute(sql, (*args, limit)).fetchall()

        return [RunSummary(*row) for row in await self._run(read)]

    async def close(self) -> None:
        def shut(conn: sqlite3.Connection) -> None:
            conn.close()

        if self._conn is not None:
            await self._run(shut)
            self._conn = None
        self._executor.shutdown(wait=True)


def _snapshot_to_json(s: RunSnapshot) -> dict[str, Any]:
    return {
        "run_id": s.run_id,
        "workflow_id": s.workflow_id,
        "status": s.status,
        "state": s.state,
        "result": s.result,
        "error": s.error,
        "suspended": s.suspended,
        "runtime_context": s.runtime_context,
        "last_seq": s.last_seq,
        "updated_at": s.updated_at,
    }


def _snapshot_from_json(d: dict[str, Any]) -> RunSnapshot:
    return RunSnapshot(**d)
