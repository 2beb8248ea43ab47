"""Storage in PostgreSQL (the ``stepstream[postgres]`` extra, psycopg 3), for many processes.

Connections come from a :class:`psycopg_pool.AsyncConnectionPool`, so reads of one process
run beside its writes. Checkpoints of concurrent runs are grouped (one transaction per flush,
a constant number of statements whatever the batch: ``unnest`` of arrays); claims are
``SELECT ... FOR UPDATE`` compare-and-sets, so a run executes in one process at a time. A
psycopg connection belongs to the event loop that opened it, so the pool is made lazily in the
running loop and made again when a call comes from another loop (``asyncio.run()`` twice).

**Across processes.** Each grouped commit notifies the ``stepstream_events`` channel with
``"<status> <last seq> <run id>"`` for each run it wrote, and one listening connection per
storage instance (:mod:`._listener`) wakes the followers of those runs in this process
(:meth:`PostgresStorage.follow`), who then read the new events from the log. Control messages
(cancel, resume, send-event) reach a run's owner through a table and two more channels
(:mod:`._control`), and starts that an instance has no room for wait in a queue that instances
with room take from with ``SKIP LOCKED`` (:mod:`._queue`). Channel names carry the
``schema``, so stores in different schemas of one database do not hear each other.

Values are stored as ``json`` (kept as written: Mastra's key order survives, which ``jsonb``
would not keep); the run encodes them as strict JSON first (no ``NaN``, no lone surrogates), so
both backends accept and refuse the same values.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from . import FINAL_STATUSES, Checkpoint, Claim, RunSnapshot, RunSummary, StoredEvent
from ._base import (
    Pending,
    StorageBase,
    Write,
    claim_refusal,
    new_owner,
    now_ms,
    snapshot_of,
    stored_statuses,
    summaries,
)
from ._codec import encode, from_v1, path_key, prefix_bounds
from ._control import CONTROL_SCHEMA, ControlDesk, ControlHandler
from ._listener import Listener
from ._queue import QUEUE_SCHEMA, Queued, RunQueue

__all__ = ["SCHEMA_VERSION", "PostgresStorage"]

SCHEMA_VERSION = 2
"""The layout of the tables; an older database is migrated when first opened."""

# run_id is compared byte-wise (COLLATE "C") so that list_runs() breaks ties in the same order
# as SQLite, whatever the database's locale; keys likewise, for prefix ranges.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS {version} (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS {runs} (
    run_id TEXT COLLATE "C" PRIMARY KEY,
    workflow_id TEXT NOT NULL,
    status TEXT NOT NULL,
    input JSON NOT NULL,
    runtime_context JSON NOT NULL,
    meta JSON NOT NULL,
    result JSON NOT NULL,
    error TEXT,
    suspended JSON NOT NULL,
    last_seq BIGINT NOT NULL,
    owner TEXT,
    lease_until BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS stepstream_runs_status_v2 ON {runs} (status, updated_at);
CREATE INDEX IF NOT EXISTS stepstream_runs_workflow_v2 ON {runs} (workflow_id, updated_at);
CREATE TABLE IF NOT EXISTS {records} (
    run_id TEXT COLLATE "C" NOT NULL,
    kind TEXT NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    ord BIGINT NOT NULL,
    data JSON NOT NULL,
    PRIMARY KEY (run_id, kind, key)
);
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

# The checkpoint's own statement also notifies (delivered at COMMIT, with the events it stores):
# one round trip less per group commit than a NOTIFY of its own.
_CHECKPOINT = """
WITH written AS (
UPDATE {runs} AS r SET status = v.status, last_seq = v.last_seq, result = v.result::json,
    error = v.error, suspended = v.suspended::json,
    runtime_context = COALESCE(v.ctx::json, r.runtime_context),
    meta = COALESCE(v.meta::json, r.meta),
    owner = CASE WHEN v.release THEN NULL ELSE r.owner END, lease_until = v.lease,
    updated_at = %s
FROM unnest(%s::text[], %s::text[], %s::text[], %s::bigint[], %s::text[], %s::text[],
            %s::text[], %s::text[], %s::text[], %s::bool[], %s::bigint[])
    AS v(run_id, owner, status, last_seq, result, error, suspended, ctx, meta, release, lease)
WHERE r.run_id = v.run_id AND r.owner = v.owner
RETURNING r.run_id, r.status, r.last_seq
)
SELECT run_id, pg_notify(%s, status || ' ' || last_seq || ' ' || run_id) FROM written
"""
# A new run, or a pending one of the same workflow (created, never started): of concurrent
# starts, the row lock lets one through and the others find it running (ON CONFLICT re-reads
# the row it waited for).
_TAKE_PENDING = """
ON CONFLICT (run_id) DO UPDATE SET status = 'running', input = EXCLUDED.input,
    runtime_context = EXCLUDED.runtime_context, owner = EXCLUDED.owner,
    lease_until = EXCLUDED.lease_until, updated_at = EXCLUDED.updated_at
    WHERE r.status = 'pending' AND r.workflow_id = EXCLUDED.workflow_id
RETURNING r.run_id
"""
_CREATE = (
    """
INSERT INTO {runs} AS r
SELECT v.run_id, v.workflow_id, 'running', v.input::json, v.ctx::json, '{{}}', 'null', NULL,
    '[]', -1, v.owner, v.lease, %s, %s
FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::bigint[])
    AS v(run_id, workflow_id, input, ctx, owner, lease)
"""
    + _TAKE_PENDING
)
_PENDING = """
INSERT INTO {runs}
SELECT v.run_id, v.workflow_id, 'pending', 'null', '{{}}', '{{}}', 'null', NULL, '[]', -1, NULL,
    0, %s, %s
FROM unnest(%s::text[], %s::text[]) AS v(run_id, workflow_id)
ON CONFLICT (run_id) DO NOTHING
"""
_RECORDS = """
INSERT INTO {records} (run_id, kind, key, ord, data)
SELECT run_id, kind, key, ord, data::json
FROM unnest(%s::text[], %s::text[], %s::text[], %s::bigint[], %s::text[])
    AS v(run_id, kind, key, ord, data)
ON CONFLICT (run_id, kind, key) DO UPDATE SET data = excluded.data
"""
_EVENTS = """
INSERT INTO {events} (run_id, seq, type, wire)
SELECT run_id, seq, type, wire::json
FROM unnest(%s::text[], %s::bigint[], %s::text[], %s::text[]) AS v(run_id, seq, type, wire)
ON CONFLICT (run_id, seq) DO NOTHING
"""
_NOTIFY = "SELECT pg_notify(%s, p) FROM unnest(%s::text[]) AS p"

_HEAD = (
    "SELECT workflow_id, status, input::text, runtime_context::text, meta::text, result::text,"
    " error, suspended::text, last_seq, owner, lease_until, created_at, updated_at"
    " FROM {runs} WHERE run_id = %s"
)


class PostgresStorage(StorageBase):
    """Runs and their events in a PostgreSQL database.

    :param dsn: A libpq connection string or URI (``postgresql://user@host:5432/db``).
    :param schema: The schema holding the tables, created if missing; ``None`` uses the
        connection's ``search_path`` (usually ``public``).
    :param pool_size: The most connections this instance opens.
    :param lease_seconds: How long a claim holds without renewal (renewed meanwhile).
    :param durability: ``"async"`` (the default): a step's checkpoint is written in the
        background while the run goes on (grouped with others); ``"sync"``: each step waits
        until its checkpoint is committed. Either way a run's end, a suspension and a sleep's
        start are committed before the run reports them, and a consumer of ``Run.stream()``
        is shown an event only once it is committed.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str | None = None,
        pool_size: int = 8,
        lease_seconds: float = 30.0,
        durability: str = "async",
    ) -> None:
        super().__init__(lease_seconds=lease_seconds, durability=durability)
        self.dsn = dsn
        self.schema = schema
        self.pool_size = pool_size
        names = ("runs", "records", "events", "version", "control", "queue")
        self._t = {n: _table(schema, f"stepstream_{n}" if n != "version" else "stepstream_schema")
                   for n in names}  # fmt: skip
        self._sql = {
            name: sql.SQL(text).format(**self._t)
            for name, text in {
                "checkpoint": _CHECKPOINT,
                "create": _CREATE,
                "pending": _PENDING,
                "records": _RECORDS,
                "events": _EVENTS,
                "head": _HEAD,
            }.items()
        }
        self.channels = {
            kind: _channel(schema, kind) for kind in ("events", "control", "answers", "queue")
        }
        self._queue_of_runs = RunQueue(self, self.channels["queue"])
        self._on_queued: Callable[[], None] | None = None
        self._taker = new_owner()
        self._controls = ControlDesk(self, self.channels["control"], self.channels["answers"])
        self._listener = Listener(
            dsn,
            {
                self.channels["events"]: self._heard_commit,
                self.channels["control"]: self._controls.heard,
                self.channels["answers"]: self._controls.answered,
                self.channels["queue"]: self._heard_queued,
            },
            self._reconnected,
        )
        self._pool: AsyncConnectionPool | None = None
        self._pool_loop: asyncio.AbstractEventLoop | None = None
        self._pool_guard: asyncio.Task[None] | None = None
        self._opening: asyncio.Lock | None = None
        self._schema_ready = False

    # -- connections -------------------------------------------------------------------------

    async def _get_pool(self) -> AsyncConnectionPool:
        loop = asyncio.get_running_loop()
        if self._pool is not None and self._pool_loop is loop:
            return self._pool
        if self._opening is None or self._pool_loop is not loop:
            await self._drop_pool()
            self._pool_loop, self._opening = loop, asyncio.Lock()
        async with self._opening:
            if self._pool is None:
                if not self._schema_ready:
                    async with await psycopg.AsyncConnection.connect(self.dsn) as conn:
                        await self._create_schema(conn)
                    self._schema_ready = True
                pool = AsyncConnectionPool(
                    self.dsn,
                    min_size=1,
                    max_size=self.pool_size,
                    kwargs={"autocommit": True},
                    open=False,
                )
                await pool.open()
                self._pool = pool
                self._pool_guard = loop.create_task(
                    self._close_at_the_end(pool), name="stepstream-storage-pool"
                )
        return self._pool

    async def _drop_pool(self) -> None:
        pool, self._pool = self._pool, None
        guard, self._pool_guard = self._pool_guard, None
        if pool is None:
            return
        if self._pool_loop is asyncio.get_running_loop():
            if guard is not None and not guard.done():
                guard.cancel()  # it closes the pool
                await asyncio.wait([guard])
            await pool.close()
            return
        # The pool's loop has ended without its tasks being canceled (``asyncio.run()``
        # cancels them, and the guard closes the pool then): close its idle connections from
        # here, at the libpq level (no event loop involved), and its tasks' coroutines, which
        # would otherwise fail when collected (their loop is closed).
        idle = list(getattr(pool, "_pool", ()))
        pool._closed = True
        for conn in idle:
            conn.pgconn.finish()
        tasks = [*getattr(pool, "_workers", ()), getattr(pool, "_sched_runner", None), guard]
        for task in tasks:
            if task is not None and not task.done():
                with contextlib.suppress(RuntimeError):  # "Event loop is closed"
                    task.get_coro().close()

    async def _close_at_the_end(self, pool: AsyncConnectionPool) -> None:
        """Wait until canceled, then close ``pool``: at the end of ``asyncio.run()``, which
        cancels every task of its loop, the pool's own included. Left to that, under load a
        pool worker outlived the cancellation (seen after an ``error connecting`` warning):
        the end of the loop hung, or, once the loop was closed, the worker's coroutine failed
        when collected. The workers the pool itself stops (``close()`` queues a stop for each)
        end at once; a later call opens a new pool."""
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.get_running_loop().create_future()
        if self._pool is pool:
            self._pool = None
        await pool.close()

    async def _create_schema(self, conn: psycopg.AsyncConnection[Any]) -> None:
        async with conn.transaction():
            await conn.execute(_DDL_LOCK)
            if self.schema is not None:
                create = sql.SQL("CREATE SCHEMA IF NOT EXISTS {}")
                await conn.execute(create.format(sql.Identifier(self.schema)))
            cur = await conn.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_name = 'stepstream_runs'"
                " AND table_schema = COALESCE(%s, current_schema())",
                (self.schema,),
            )
            v1 = "snapshot" in [r[0] for r in await cur.fetchall()]
            runs = self._t["runs"]
            if v1:
                await conn.execute(
                    sql.SQL("ALTER TABLE {} RENAME TO stepstream_runs_v1").format(runs)
                )
            await conn.execute(sql.SQL(_SCHEMA).format(**self._t))
            await conn.execute(sql.SQL(CONTROL_SCHEMA).format(control=self._t["control"]))
            await conn.execute(sql.SQL(QUEUE_SCHEMA).format(queue=self._t["queue"]))
            if v1:
                old = _table(self.schema, "stepstream_runs_v1")
                cur = await conn.execute(sql.SQL("SELECT snapshot FROM {}").format(old))
                for (snapshot,) in await cur.fetchall():
                    head, records = from_v1(snapshot)
                    await conn.execute(
                        sql.SQL(
                            "INSERT INTO {} VALUES (%s, %s, %s, %s::json, %s::json, %s::json,"
                            " %s::json, %s, %s::json, %s, %s, %s, %s, %s)"
                        ).format(runs),
                        head,
                    )
                    for kind, key, order, data in records:
                        await conn.execute(
                            sql.SQL("INSERT INTO {} VALUES (%s, %s, %s, %s, %s::json)").format(
                                self._t["records"]
                            ),
                            (head[0], kind, key, order, data),
                        )
                await conn.execute(sql.SQL("DROP TABLE {}").format(old))
            version = self._t["version"]
            await conn.execute(sql.SQL("DELETE FROM {}").format(version))
            await conn.execute(
                sql.SQL("INSERT INTO {} VALUES (%s)").format(version), (SCHEMA_VERSION,)
            )

    def _transient(self, exc: BaseException) -> bool:
        return isinstance(
            exc,
            psycopg.OperationalError
            | pg_errors.SerializationFailure
            | pg_errors.DeadlockDetected
            | pg_errors.LockNotAvailable,
        )

    # -- writes ------------------------------------------------------------------------------

    async def _claim_now(self, claim: Claim, now: int) -> None:
        runs = self._t["runs"]
        pool = await self._get_pool()
        async with pool.connection() as conn:
            async with conn.transaction():
                cur = await conn.execute(
                    sql.SQL(
                        "SELECT status, owner, lease_until, last_seq FROM {}"
                        " WHERE run_id = %s FOR UPDATE"
                    ).format(runs),
                    (claim.run_id,),
                )
                refusal = claim_refusal(claim, await cur.fetchone(), now)
                if refusal is not None:
                    raise refusal
                if claim.create is not None:
                    workflow_id, input_json, context_json = claim.create
                    cur = await conn.execute(
                        sql.SQL(
                            "INSERT INTO {} AS r VALUES (%s, %s, 'running', %s::json, %s::json,"
                            " '{{}}', 'null', NULL, '[]', -1, %s, %s, %s, %s)" + _TAKE_PENDING
                        ).format(runs),
                        (claim.run_id, workflow_id, input_json, context_json, claim.owner,
                         claim.lease_until, now, now),
                    )  # fmt: skip
                    if await cur.fetchone() is None:  # created by someone else meanwhile
                        raise claim_refusal(claim, ("running", None, 0, -1), now) or AssertionError
                else:
                    await conn.execute(
                        sql.SQL(
                            "UPDATE {} SET status = 'running', owner = %s, lease_until = %s,"
                            " updated_at = %s WHERE run_id = %s"
                        ).format(runs),
                        (claim.owner, claim.lease_until, now, claim.run_id),
                    )
                self._crash("claim.before-commit")
            self._crash("claim.after-commit")

    async def _write_batch(self, batch: Sequence[Write], now: int) -> set[int]:
        lease = now + int(self.lease_seconds * 1000)
        first = {c.run_id: i for i, c in reversed(list(enumerate(batch))) if isinstance(c, Claim)}
        claims = [c for i, c in enumerate(batch) if isinstance(c, Claim) and first[c.run_id] == i]
        checkpoints = [c for c in batch if isinstance(c, Checkpoint)]
        heads = _columns(
            [
                (cp.run_id, cp.owner, cp.status, cp.last_seq, cp.result, cp.error, cp.suspended,
                 cp.runtime_context, cp.meta, cp.release, 0 if cp.release else lease)
                for cp in checkpoints
            ],
            11,
        )  # fmt: skip
        pending = [p for p in batch if isinstance(p, Pending)]
        pool = await self._get_pool()
        async with pool.connection() as conn:
            async with conn.transaction():
                if pending:
                    await conn.execute(
                        self._sql["pending"],
                        (now, now, [p.run_id for p in pending], [p.workflow_id for p in pending]),
                    )
                created: set[str] = set()
                if claims:
                    cur = await conn.execute(self._sql["create"], (now, now, *_creates(claims)))
                    created = {row[0] for row in await cur.fetchall()}
                written: set[str] = set()
                if checkpoints:
                    cur = await conn.execute(
                        self._sql["checkpoint"], (now, *heads, self.channels["events"])
                    )
                    written = {row[0] for row in await cur.fetchall()}
                kept = [cp for cp in checkpoints if cp.run_id in written]
                for cp in kept:
                    for path in cp.dropped:
                        low, high = prefix_bounds(path)
                        await conn.execute(
                            sql.SQL(
                                "DELETE FROM {} WHERE run_id = %s AND key >= %s AND key < %s"
                            ).format(self._t["records"]),
                            (cp.run_id, low, high),
                        )
                records = [
                    (cp.run_id, r.kind, path_key(r.path), r.order, r.data)
                    for cp in kept
                    for r in cp.records
                ]
                events = [(cp.run_id, *event) for cp in kept for event in cp.events]
                if records:
                    await conn.execute(self._sql["records"], _columns(records, 5))
                if events:
                    await conn.execute(self._sql["events"], _columns(events, 4))
                if created:  # a run begins: heard by other processes once committed
                    notes = [f"running -1 {run_id}" for run_id in created]
                    await conn.execute(_NOTIFY, (self.channels["events"], notes))
                self._crash_around(bool(claims), bool(checkpoints), "before")
            self._crash_around(bool(claims), bool(checkpoints), "after")
        return {
            i
            for i, item in enumerate(batch)
            if not isinstance(item, Pending)  # left as it is if it exists: never refused
            and (
                item.run_id not in (created if isinstance(item, Claim) else written)
                or (isinstance(item, Claim) and first[item.run_id] != i)  # one creator per run
            )
        }

    async def _renew_now(self, held: Sequence[tuple[str, str]], lease_until: int) -> None:
        pool = await self._get_pool()
        async with pool.connection() as conn:
            await conn.execute(
                sql.SQL(
                    "UPDATE {} AS r SET lease_until = %s FROM unnest(%s::text[], %s::text[])"
                    " AS v(run_id, owner) WHERE r.run_id = v.run_id AND r.owner = v.owner"
                    " AND r.status = 'running'"
                ).format(self._t["runs"]),
                (lease_until, [h[0] for h in held], [h[1] for h in held]),
            )
        await self._controls.catch_up()  # messages sent while the listener was deaf

    async def _release_now(self, run_id: str, owner: str, now: int) -> None:
        pool = await self._get_pool()
        async with pool.connection() as conn, conn.transaction():
            await conn.execute(
                sql.SQL(
                    "UPDATE {} SET owner = NULL, lease_until = 0, updated_at = %s"
                    " WHERE run_id = %s AND owner = %s"
                ).format(self._t["runs"]),
                (now, run_id, owner),
            )
            self._crash("release.before-commit")

    # -- across processes ----------------------------------------------------------------------

    async def _listening(self) -> None:
        await self._listener.ready()

    def _heard_commit(self, payload: str) -> None:
        status, last_seq, run_id = payload.split(" ", 2)
        self._followers.wake(run_id, status, int(last_seq))

    def _reconnected(self) -> None:
        self._followers.wake_all()
        if self._controls.handler is not None and self._held:
            task = asyncio.get_running_loop().create_task(self._controls.catch_up())
            self._controls._tasks.add(task)
            task.add_done_callback(self._controls._tasks.discard)

    def on_control(self, handler: ControlHandler | None) -> None:
        """Answer the control messages sent to the runs this instance holds with ``handler``
        (``handler(run_id, kind, body) -> answer``; a server registers one); listening starts
        with the next claim."""
        self._controls.handler = handler

    async def send_control(
        self, run_id: str, kind: str, body: dict[str, Any], *, within: float = 10.0
    ) -> dict[str, Any] | None:
        """Send a control message to the process executing ``run_id`` and return its answer,
        or ``None`` when no process executes the run any more (act on the stored run then).

        :raises StorageError: if no answer came within ``within`` seconds.
        """
        return await self._controls.send(run_id, kind, body, within)

    # -- queued runs (see ._queue) -------------------------------------------------------------

    async def enqueue(
        self, run_id: str, workflow_id: str, input_data: Any, runtime_context: dict[str, Any]
    ) -> None:
        """Queue the start of a new run for any instance with room to take.

        :raises RunClaimedError: if the run exists or is queued already.
        :raises StorageError: if the input or the context cannot be stored as JSON.
        """
        await self._queue_of_runs.put(
            run_id,
            workflow_id,
            encode(input_data, f"run {run_id}: the input", run_id=run_id),
            encode(runtime_context, f"run {run_id}: the runtime context", run_id=run_id),
        )

    async def take_queued(self, workflow_ids: Sequence[str], limit: int) -> list[Queued]:
        """Take at most ``limit`` queued runs of ``workflow_ids`` (oldest first) to start here;
        call :meth:`queued_done` once each is started (claimed)."""
        return await self._queue_of_runs.take(list(workflow_ids), self._taker, limit)

    async def queued_done(self, run_id: str) -> None:
        """A taken run is started (or could not be): drop it from the queue."""
        await self._queue_of_runs.done(run_id)

    async def is_queued(self, run_id: str) -> bool:
        """Whether ``run_id`` waits in the queue (or is being started from it)."""
        return await self._queue_of_runs.holds(run_id)

    def on_queued(self, callback: Callable[[], None] | None) -> None:
        """Call ``callback()`` when any process queues a run (once listening)."""
        self._on_queued = callback

    def _heard_queued(self, payload: str) -> None:
        if self._on_queued is not None:
            self._on_queued()

    async def claim(self, claim: Claim) -> None:
        await super().claim(claim)
        if self._controls.handler is not None:  # messages for this run must reach us
            await self._listener.ready()

    # -- reads -------------------------------------------------------------------------------

    async def _head_now(self, run_id: str) -> tuple[str, int] | None:
        pool = await self._get_pool()
        async with pool.connection() as conn:
            cur = await conn.execute(
                sql.SQL("SELECT status, last_seq FROM {} WHERE run_id = %s").format(
                    self._t["runs"]
                ),
                (run_id,),
            )
            row = await cur.fetchone()
        return None if row is None else (row[0], row[1])

    async def load_run(self, run_id: str) -> RunSnapshot | None:
        """The run as stored, or ``None`` if the run is unknown."""
        pool = await self._get_pool()
        async with pool.connection() as conn:
            cur = await conn.execute(self._sql["head"], (run_id,))
            head = await cur.fetchone()
            if head is None:
                return None
            cur = await conn.execute(
                sql.SQL("SELECT kind, key, ord, data::text FROM {} WHERE run_id = %s").format(
                    self._t["records"]
                ),
                (run_id,),
            )
            rows = await cur.fetchall()
        return snapshot_of(run_id, head, rows)

    async def read_events(
        self, run_id: str, after_seq: int = -1, *, limit: int | None = None
    ) -> list[StoredEvent]:
        """The run's events with ``seq > after_seq``, in order (at most ``limit``)."""
        query = sql.SQL(
            "SELECT seq, type, wire FROM {} WHERE run_id = %s AND seq > %s ORDER BY seq LIMIT %s"
        ).format(self._t["events"])
        pool = await self._get_pool()
        async with pool.connection() as conn:
            after = max(min(after_seq, 2**63 - 1), -(2**63))
            cur = await conn.execute(
                query, (run_id, after, None if limit is None else max(limit, 0))
            )
            rows = await cur.fetchall()
        return [StoredEvent(seq, kind, wire) for seq, kind, wire in rows]

    async def list_runs(
        self,
        *,
        workflow_id: str | None = None,
        status: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[RunSummary]:
        """Runs, most recently updated first (ties by ``run_id``), at most ``limit``."""
        now = now_ms()
        wanted = None if status is None else [status]
        sift = status in ("running", "interrupted")  # told apart after the query
        where: list[sql.Composable] = []
        args: list[Any] = []
        if wanted is not None:
            where.append(sql.SQL("status = ANY(%s)"))
            args.append(stored_statuses(wanted))
        if workflow_id is not None:
            where.append(sql.SQL("workflow_id = %s"))
            args.append(workflow_id)
        query = sql.SQL(
            "SELECT run_id, workflow_id, status, owner, lease_until, updated_at FROM {}"
        ).format(self._t["runs"])
        if where:
            query += sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where)
        query += sql.SQL(" ORDER BY updated_at DESC, run_id")
        if not sift:
            query += sql.SQL(" LIMIT %s OFFSET %s")
            args += [max(limit, 0), max(offset, 0)]
        pool = await self._get_pool()
        async with pool.connection() as conn:
            cur = await conn.execute(query, args)
            rows = await cur.fetchall()
        found = summaries(rows, wanted, now)
        return found[max(offset, 0) : max(offset, 0) + max(limit, 0)] if sift else found

    async def prune(self, *, older_than: float, statuses: Sequence[str] = FINAL_STATUSES) -> int:
        """Delete runs in ``statuses`` not updated for ``older_than`` seconds."""
        now = now_ms()
        pool = await self._get_pool()
        async with pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                sql.SQL(
                    "SELECT run_id, workflow_id, status, owner, lease_until, updated_at FROM {}"
                    " WHERE updated_at < %s AND status = ANY(%s) FOR UPDATE"
                ).format(self._t["runs"]),
                (now - int(older_than * 1000), stored_statuses(statuses)),
            )
            ids = [s.run_id for s in summaries(await cur.fetchall(), statuses, now)]
            for table in ("events", "records", "runs"):
                await conn.execute(
                    sql.SQL("DELETE FROM {} WHERE run_id = ANY(%s)").format(self._t[table]), (ids,)
                )
        return len(ids)

    async def close(self) -> None:
        """Release the claims still held, then close the pool; a later call opens a new one."""
        await self._stop_background()
        await self._controls.close()
        await self._listener.close()
        await self._drop_pool()


def _creates(claims: Sequence[Claim]) -> list[list[Any]]:
    """The columns of :data:`_CREATE` for claims that create their runs."""
    rows = []
    for claim in claims:
        assert claim.create is not None
        workflow_id, input_json, context_json = claim.create
        rows.append(
            (claim.run_id, workflow_id, input_json, context_json, claim.owner, claim.lease_until)
        )
    return _columns(rows, 6)


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as ``width`` column lists (the arrays ``unnest`` takes)."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[]] * width


def _channel(schema: str | None, kind: str) -> str:
    """A NOTIFY channel's name: ``stepstream_<kind>``, then the schema (at most 63 bytes, the
    longest identifier PostgreSQL keeps)."""
    name = f"stepstream_{kind}" + ("" if schema is None else f".{schema}")
    return name.encode()[:63].decode(errors="ignore")


def _table(schema: str | None, name: str) -> sql.Identifier:
    return sql.Identifier(name) if schema is None else sql.Identifier(schema, name)
