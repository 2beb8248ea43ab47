"""Control messages to a run's owner, through PostgreSQL: a table and two channels.

A process that is asked to cancel, resume or send an event to a run that another process
executes writes a message row and notifies the *control* channel with ``"<id> <run id>"``, in
one transaction. Every storage instance hears it; the one holding the run takes the row (an
``UPDATE ... WHERE answered_at IS NULL``: one taker), hands it to the handler its host
registered (:meth:`~stepstream.storage.postgres.PostgresStorage.on_control`), writes the
answer and notifies the *answers* channel with the id. The sender waits for that, reading the
row again every ``recheck`` seconds meanwhile (a lost notification costs that much, never the
answer). Each owner also reads the messages for its runs when its listener (re)connects and
whenever it renews its leases, so a message sent while it was deaf is still answered.

The sender stops waiting when the run is no longer executing anywhere (it ended, suspended, or
its owner died) and its message was not taken: it withdraws the message and is told so
(``None``), to act on the stored run itself. After ``within`` seconds without an answer it
deletes the message and fails with :class:`~stepstream.errors.StorageError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from psycopg import sql

from ..errors import StorageError
from ._base import effective_status, now_ms
from ._pg_seam import PostgresLike

__all__ = ["CONTROL_SCHEMA", "ControlDesk", "ControlHandler"]

log = logging.getLogger("stepstream.storage")

ControlHandler = Callable[[str, str, dict[str, Any]], Awaitable[dict[str, Any]]]
"""``handler(run_id, kind, body) -> answer``: what the owner's host does with a message."""

CONTROL_SCHEMA = """
CREATE TABLE IF NOT EXISTS {control} (
    id BIGSERIAL PRIMARY KEY,
    run_id TEXT COLLATE "C" NOT NULL,
    kind TEXT NOT NULL,
    body JSON NOT NULL,
    answer JSON,
    created_at BIGINT NOT NULL,
    answered_at BIGINT
);
CREATE INDEX IF NOT EXISTS stepstream_control_run ON {control} (run_id) WHERE answered_at IS NULL;
"""


class ControlDesk:
    """Sends control messages for one storage instance and answers those for its runs."""

    def __init__(self, storage: PostgresLike, control: str, answers: str) -> None:
        self.storage = storage
        self.channel = control
        self.answers_channel = answers
        self.handler: ControlHandler | None = None
        self._answers: dict[int, asyncio.Future[None]] = {}
        self._serving: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        table = storage._t["control"]
        self._sql = {
            name: sql.SQL(text).format(table=table, runs=storage._t["runs"])
            for name, text in {
                "send": "INSERT INTO {table} (run_id, kind, body, created_at)"
                " VALUES (%s, %s, %s::json, %s) RETURNING id",
                "take": "UPDATE {table} SET answered_at = 0 WHERE id = %s AND answered_at IS NULL"
                " RETURNING run_id, kind, body::text",
                "answer": "UPDATE {table} SET answer = %s::json, answered_at = %s WHERE id = %s",
                "read": "SELECT answer::text FROM {table} WHERE id = %s",
                "withdraw": "DELETE FROM {table} WHERE id = %s AND answered_at IS NULL"
                " RETURNING id",
                "delete": "DELETE FROM {table} WHERE id = %s",
                "pending": "SELECT id, run_id FROM {table}"
                " WHERE answered_at IS NULL AND run_id = ANY(%s)",
                "head": "SELECT status, owner, lease_until FROM {runs} WHERE run_id = %s",
            }.items()
        }

    # -- sending -------------------------------------------------------------------------------

    async def send(
        self, run_id: str, kind: str, body: dict[str, Any], within: float
    ) -> dict[str, Any] | None:
        """Send ``kind`` with ``body`` to the owner of ``run_id`` and return its answer, or
        ``None`` when the run is executing nowhere (nobody took the message)."""
        storage = self.storage
        await storage._listening()  # listen for the answer before it can be sent
        pool = await storage._get_pool()
        async with pool.connection() as conn, conn.transaction():
            cur = await conn.execute(self._sql["send"], (run_id, kind, json.dumps(body), now_ms()))
            row = await cur.fetchone()
            assert row is not None
            message = int(row[0])
            await conn.execute("SELECT pg_notify(%s, %s)", (self.channel, f"{message} {run_id}"))
        answered = self._answers[message] = asyncio.get_running_loop().create_future()
        deadline = asyncio.get_running_loop().time() + within
        try:
            while True:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    await self._delete(message)
                    raise StorageError(
                        f"run {run_id}: its owner did not answer {kind!r} within {within:g} s"
                    )
                pause = min(left, storage.follow_recheck)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(answered), pause)
                answer = await self._read(message)
                if answer is not None:
                    return answer
                if not await self._executing(run_id) and await self._withdraw(message):
                    return None
                if answered.done():
                    answered = self._answers[message] = asyncio.get_running_loop().create_future()
        finally:
            self._answers.pop(message, None)

    async def _read(self, message: int) -> dict[str, Any] | None:
        pool = await self.storage._get_pool()
        async with pool.connection() as conn:
            cur = await conn.execute(self._sql["read"], (message,))
            row = await cur.fetchone()
            if row is None or row[0] is None:
                return None
            await conn.execute(self._sql["delete"], (message,))
        answer: dict[str, Any] = json.loads(row[0])
        return answer

    async def _delete(self, message: int) -> None:
        pool = await self.storage._get_pool()
        async with pool.connection() as conn:
            await conn.execute(self._sql["delete"], (message,))

    async def _withdraw(self, message: int) -> bool:
        """Take back a message nobody has taken; whether it was withdrawn."""
        pool = await self.storage._get_pool()
        async with pool.connection() as conn:
            cur = await conn.execute(self._sql["withdraw"], (message,))
            return await cur.fetchone() is not None

    async def _executing(self, run_id: str) -> bool:
        pool = await self.storage._get_pool()
        async with pool.connection() as conn:
            cur = await conn.execute(self._sql["head"], (run_id,))
            row = await cur.fetchone()
        return row is not None and effective_status(row[0], row[2], now_ms(), row[1]) == "running"

    def answered(self, payload: str) -> None:
        """A notification on the answers channel: wake the sender waiting for it."""
        waiter = self._answers.get(int(payload))
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- answering -----------------------------------------------------------------------------

    def heard(self, payload: str) -> None:
        """A notification on the control channel: serve it if the run is held here."""
        message, _, run_id = payload.partition(" ")
        if self.handler is not None and run_id in self.storage._held:
            self._serve(int(message))

    async def catch_up(self) -> None:
        """Serve the messages waiting for the runs held here (after a reconnect; with each
        lease renewal)."""
        held = list(self.storage._held)
        if self.handler is None or not held:
            return
        pool = await self.storage._get_pool()
        async with pool.connection() as conn:
            cur = await conn.execute(self._sql["pending"], (held,))
            for message, _run_id in await cur.fetchall():
                self._serve(int(message))

    def _serve(self, message: int) -> None:
        if message in self._serving:
            return
        self._serving.add(message)
        task = asyncio.get_running_loop().create_task(self._answer(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, message: int) -> None:
        try:
            pool = await self.storage._get_pool()
            async with pool.connection() as conn:
                cur = await conn.execute(self._sql["take"], (message,))
                row = await cur.fetchone()
            if row is None or self.handler is None:  # another instance took it, or withdrawn
                return
            run_id, kind, body = row
            try:
                answer = await self.handler(run_id, kind, json.loads(body))
            except Exception as exc:  # the sender gets the failure as its answer
                log.warning("stepstream: control %r of run %s failed", kind, run_id, exc_info=True)
                answer = {"error": f"{type(exc).__name__}: {exc}", "status": 500}
            async with pool.connection() as conn, conn.transaction():
                await conn.execute(self._sql["answer"], (json.dumps(answer), now_ms(), message))
                await conn.execute("SELECT pg_notify(%s, %s)", (self.answers_channel, str(message)))
        except Exception:
            log.warning("stepstream: could not answer control message %d", message, exc_info=True)
        finally:
            self._serving.discard(message)

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
