"""Queued runs in PostgreSQL: starts that any instance with capacity may execute.

An instance asked to start a run while it executes as many as it may queues the run instead
(:meth:`~stepstream.storage.postgres.PostgresStorage.enqueue`): a row with the run's id,
workflow, input and runtime context, and a notification on the *queue* channel. Instances with
room take queued runs with ``FOR UPDATE SKIP LOCKED`` (concurrent takers never wait for one
another, and never take the same row), marking each taken row with themselves and a lease; the
taker creates (or takes up, when ``create-run`` stored it ``pending``) and starts the run,
then deletes the row. A run that exists and is not pending cannot be queued. A taker that dies
before deleting the row lets its lease lapse, and another instance takes the row again:
starting a run that has started is refused by its claim, so a run starts once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import sql

from ..errors import RunClaimedError
from ._base import now_ms
from ._pg_seam import PostgresLike

__all__ = ["QUEUE_SCHEMA", "Queued", "RunQueue"]

QUEUE_SCHEMA = """
CREATE TABLE IF NOT EXISTS {queue} (
    run_id TEXT COLLATE "C" PRIMARY KEY,
    workflow_id TEXT NOT NULL,
    input JSON NOT NULL,
    runtime_context JSON NOT NULL,
    enqueued_at BIGINT NOT NULL,
    taker TEXT,
    taken_until BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS stepstream_queue_order ON {queue} (enqueued_at);
"""


@dataclass(frozen=True)
class Queued:
    """A queued run as taken: what its start needs (JSON values decoded)."""

    run_id: str
    workflow_id: str
    input: Any
    runtime_context: dict[str, Any]


class RunQueue:
    """The queue statements of one PostgreSQL storage instance."""

    def __init__(self, storage: PostgresLike, channel: str) -> None:
        self.storage = storage
        self.channel = channel
        table, runs = storage._t["queue"], storage._t["runs"]
        self._sql = {
            name: sql.SQL(text).format(table=table, runs=runs)
            for name, text in {
                "exists": "SELECT 1 FROM {runs} WHERE run_id = %s AND status <> 'pending'",
                "put": "INSERT INTO {table} VALUES (%s, %s, %s::json, %s::json, %s, NULL, 0)"
                " ON CONFLICT (run_id) DO NOTHING RETURNING run_id",
                "take": "UPDATE {table} SET taker = %s, taken_until = %s WHERE run_id IN ("
                " SELECT run_id FROM {table} WHERE workflow_id = ANY(%s) AND taken_until < %s"
                " ORDER BY enqueued_at LIMIT %s FOR UPDATE SKIP LOCKED)"
                " RETURNING run_id, workflow_id, input, runtime_context",
                "done": "DELETE FROM {table} WHERE run_id = %s",
                "queued": "SELECT 1 FROM {table} WHERE run_id = %s",
            }.items()
        }

    async def put(self, run_id: str, workflow_id: str, input_json: str, context_json: str) -> None:
        pool = await self.storage._get_pool()
        async with pool.connection() as conn, conn.transaction():
            cur = await conn.execute(self._sql["exists"], (run_id,))
            if await cur.fetchone() is not None:
                raise RunClaimedError(f"run {run_id} has already started", run_id=run_id)
            cur = await conn.execute(
                self._sql["put"], (run_id, workflow_id, input_json, context_json, now_ms())
            )
            if await cur.fetchone() is None:
                raise RunClaimedError(f"run {run_id} is already queued", run_id=run_id)
            await conn.execute("SELECT pg_notify(%s, %s)", (self.channel, workflow_id))

    async def take(self, workflow_ids: list[str], taker: str, limit: int) -> list[Queued]:
        if limit <= 0 or not workflow_ids:
            return []
        now = now_ms()
        lease = now + int(self.storage.lease_seconds * 1000)
        pool = await self.storage._get_pool()
        async with pool.connection() as conn, conn.transaction():
            cur = await conn.execute(self._sql["take"], (taker, lease, workflow_ids, now, limit))
            rows = await cur.fetchall()
        return [Queued(r, w, i, c) for r, w, i, c in rows]

    async def done(self, run_id: str) -> None:
        pool = await self.storage._get_pool()
        async with pool.connection() as conn:
            await conn.execute(self._sql["done"], (run_id,))

    async def holds(self, run_id: str) -> bool:
        pool = await self.storage._get_pool()
        async with pool.connection() as conn:
            cur = await conn.execute(self._sql["queued"], (run_id,))
            return await cur.fetchone() is not None
