"""One ``LISTEN`` connection per PostgreSQL storage instance, fanned out to this process.

Commits ``NOTIFY`` small payloads (a run id and a seq, a message id); the listener hears them
on its own connection and calls the handler of each channel, synchronously, in the event loop.
Notifications are hints: what they announce is in the tables, so a dropped connection loses
nothing that matters. The listener reconnects (with a capped backoff) and then calls
``on_connect``, so that whoever waits reads the tables again instead of waiting for a
notification that was sent while nobody listened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping

import psycopg
from psycopg import sql

__all__ = ["Listener"]

log = logging.getLogger("stepstream.storage")

_FIRST_WAIT = 0.05
"""Seconds before the first reconnection (then doubling, at most 2 s)."""


class Listener:
    """Listens on ``channels`` (name -> handler of a payload) with a connection of its own.

    :param dsn: Where to connect.
    :param on_connect: Called each time the connection is (re)established and listening.
    """

    def __init__(
        self,
        dsn: str,
        channels: Mapping[str, Callable[[str], None]],
        on_connect: Callable[[], None],
    ) -> None:
        self.dsn = dsn
        self.channels = dict(channels)
        self.on_connect = on_connect
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected = asyncio.Event()

    async def ready(self, patience: float = 2.0) -> bool:
        """Start listening (in the running loop) if not yet; return whether it listens now,
        waiting at most ``patience`` seconds (a database that is down is no error here: the
        waiters fall back on reading the tables from time to time)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._task is None or self._task.done():
            self._loop, self._connected = loop, asyncio.Event()
            self._task = loop.create_task(self._run(), name="stepstream-storage-listener")
        if self._connected.is_set():
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), patience)
        return self._connected.is_set()

    async def close(self) -> None:
        """Stop listening (the task of another, ended loop is merely forgotten)."""
        task, self._task = self._task, None
        if task is None or task.done():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if self._loop is running:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        wait = _FIRST_WAIT
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
                async with conn:
                    for channel in self.channels:
                        await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                    self._connected.set()
                    wait = _FIRST_WAIT
                    self.on_connect()
                    async for note in conn.notifies():
                        handler = self.channels.get(note.channel)
                        if handler is not None:
                            try:
                                handler(note.payload)
                            except Exception:  # one bad payload must not stop the listener
                                log.warning("stepstream: bad notification %r", note, exc_info=True)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("stepstream: the storage's listener lost its connection", exc_info=True)
            self._connected.clear()
            await asyncio.sleep(wait)
            wait = min(wait * 2, 2.0)
