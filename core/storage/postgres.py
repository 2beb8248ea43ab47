"""Storage in PostgreSQL (the ``stepstream[postgres]`` extra, psycopg 3), for many processes.

One :class:`psycopg.AsyncConnection` in autocommit mode is shared by the calls of one instance
and guarded by an :class:`asyncio.Lock`, so the calls of one process are serialised and the
server orders those of several processes. A psycopg connection belongs to the event loop that
opened it, so the connection is opened lazily in the running loop and opened again when a call
comes from another loop (``asyncio.run()`` twice, a fresh loop per test).

Snapshots and wire events are stored as ``json`` (kept as written: Mastra's key order survives,
which ``jsonb`` would not keep). They must be valid JSON: unlike the SQLite backend, PostgreSQL
rejects ``NaN``/``Infinity`` and the ``\\u0000`` character in strings.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Json

from . import RunSnapshot, RunSummary, StoredEvent

__all__ = ["PostgresStorage"]

# run_id is compared byte-wise (COLLATE "C") so that list_runs() breaks ties in the same order
# as SQLite, whatever the database's locale.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS {runs} (
    run_id TEXT COLLATE "C" PRIMARY KEY,
    workflow_id TEXT NOT NULL,
    status TEXT NOT NULL,
    snapshot JSON NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS stepstream_runs_status ON {runs} (status, updated_at);
CREATE TABLE IF NOT EXISTS {events} (
    run_id TEXT COLLATE "C" NOT NULL,
    seq BIGINT NOT NULL,
    type TEXT NOT NULL,
    wire JSON NOT NULL,
    PRIMARY KEY (run_id, seq)
);
"""

# Concurrent CREATE TABLE IF NOT EXISTS can fail on PostgreSQL's catalog unique indexes, so
# processes creating the schema at once take turns on this advisory lock.
_DDL_LOCK = "SELECT pg_advisory_xact_lock(hashtext('stepstream.storage.postgres'))"


class PostgresStorage:
    """Runs and their events in a PostgreSQL database.

    :param dsn: A libpq connection string or URI (``postgresql://user@host:5432/db``).
    :param schema: The schema holding the tables, created if missing; ``None`` uses the
        connection's ``search_path`` (usually ``public``).
    """

    def __init__(self, dsn: str, *, schema: str | None = None) -> None:
        self.dsn = dsn
        self.schema = schema
        self._runs = _table(schema, "stepstream_runs")
        self._events = _table(schema, "stepstream_events")
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = asyncio.Lock()
        self._schema_ready = False

    async def _open(self) -> psycopg.AsyncConnection[Any]:
        conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
        if not self._schema_ready:
            ddl = sql.SQL(_SCHEMA).format(runs=self._runs, events=self._events)
            async with conn.transaction():
                await conn.execute(_DDL_LOCK)
                if self.schema is not None:
                    create = sql.SQL("CREATE SCHEMA IF NOT EXISTS {}")
                    await conn.execute(create.format(sql.Identifier(self.schema)))
                await conn.execute(ddl)
            self._schema_ready = True
        return conn

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # The lock and the connection of another loop cannot be awaited here; closing a
            # psycopg connection waits for no I/O, so it is safe from this loop.
            await self._drop()
            self._loop = loop
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._conn is None or self._conn.closed:
                self._conn = await self._open()
            yield self._conn

    async def save_run(self, snapshot: RunSnapshot) -> None:
        """Replace the run's snapshot."""
        data = Json(dict(vars(snapshot)))  # shallow: the fields are JSON data already
        updated = snapshot.updated_at or time.time_ns() // 1_000_000
        query = sql.SQL(
            "INSERT INTO {} (run_id, workflow_id, status, snapshot, updated_at)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (run_id) DO UPDATE SET"
            " workflow_id = excluded.workflow_id, status = excluded.status,"
            " snapshot = excluded.snapshot, updated_at = excluded.updated_at"
        ).format(self._runs)
        async with self._connection() as conn:
            await conn.execute(
                query, (snapshot.run_id, snapshot.workflow_id, snapshot.status, data, updated)
            )

    async def load_run(self, run_id: str) -> RunSnapshot | None:
        """The run's latest snapshot, or ``None`` if the run is unknown."""
        query = sql.SQL("SELECT snapshot FROM {} WHERE run_id = %s").format(self._runs)
        async with self._connection() as conn:
            cur = await conn.execute(query, (run_id,))
            row = await cur.fetchone()
        return None if row is None else RunSnapshot(**row[0])

    async def append_events(self, run_id: str, events: list[StoredEvent]) -> None:
        """Add events to the run's log, ignoring those whose ``seq`` is already stored."""
        if not events:
            return
        rows = [(run_id, e.seq, e.type, Json(e.wire)) for e in events]
        query = sql.SQL(
            "INSERT INTO {} (run_id, seq, type, wire) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (run_id, seq) DO NOTHING"
        ).format(self._events)
        async with self._connection() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.executemany(query, rows)

    async def read_events(
        self, run_id: str, after_seq: int = -1, *, limit: int | None = None
    ) -> list[StoredEvent]:
        """The run's events with ``seq > after_seq``, in order; the first ``limit`` if given."""
        query = sql.SQL(
            "SELECT seq, type, wire FROM {} WHERE run_id = %s AND seq > %s ORDER BY seq LIMIT %s"
        ).format(self._events)
        async with self._connection() as conn:
            cur = await conn.execute(query, (run_id, after_seq, limit))
            rows = await cur.fetchall()
        return [StoredEvent(seq, kind, wire) for seq, kind, wire in rows]

    async def list_runs(
        self, *, workflow_id: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[RunSummary]:
        """Runs, most recently updated first (ties by ``run_id``), at most ``limit``."""
        where: list[sql.Composable] = []
        args: list[Any] = []
        if workflow_id is not None:
            where.append(sql.SQL("workflow_id = %s"))
            args.append(workflow_id)
        if status is not None:
            where.append(sql.SQL("status = %s"))
            args.append(status)
        query = sql.SQL("SELECT run_id, workflow_id, status, updated_at FROM {}").format(self._runs)
        if where:
            query += sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where)
        query += sql.SQL(" ORDER BY updated_at DESC, run_id LIMIT %s")
        async with self._connection() as conn:
            cur = await conn.execute(query, (*args, limit))
            rows = await cur.fetchall()
        return [RunSummary(*row) for row in rows]

    async def close(self) -> None:
        """Close the connection, after the call in progress; a later call opens a new one."""
        if self._loop is asyncio.get_running_loop():
            async with self._lock:
                await self._drop()
        else:
            await self._drop()

    async def _drop(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


def _table(schema: str | None, name: str) -> sql.Identifier:
    return sql.Identifier(name) if schema is None else sql.Identifier(schema, name)
