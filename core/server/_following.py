"""Sending a run's events to HTTP clients: coalesced writes, SSE followers and watchers.

Only the run's own ``Run.stream()`` consumer (``POST .../stream``) may slow a run down, by its
bounded buffer. Every other client is a *follower* and never does:

- SSE followers (``GET .../runs/{runId}/events``) share one :class:`Feed` per live run: a
  window of the run's last :data:`WINDOW` events, each encoded once, filled by a sync watcher
  that never waits. A follower reads the window from its own position; one that has fallen out
  of it (a slow reader, or one joining late) reads on from the stored log, a page of
  :data:`PAGE` events at a time, then rejoins the window. So a follower is never dropped and
  holds at most a page in memory, however long the run.
- Watchers (``GET .../watch``) keep at most :data:`WATCH_BACKLOG` pending records each; when a
  client is further behind, the oldest are dropped: every watch record carries the whole run
  state, so the latest supersedes them, and the final record is never dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ..events import Event
from ..run import Run
from ..storage import Storage
from ._wire import dumps

WINDOW = 8192
"""How many of a live run's latest events its SSE followers share in memory (at most
:data:`WINDOW_BYTES` of them). Large on purpose: a follower that falls out of the window reads
storage on its own, and 1,000 of them doing so (window 1,024) grew the server by 200 MiB and
made the run wait 5 s for the storage thread; with 8,192, 15 MiB and 0.6 s."""

WINDOW_BYTES = 4 << 20  # frames can be large: the window is bounded by bytes too

PAGE = 100
"""How many stored events a follower reads from storage at a time."""

BATCH = 64
"""The most frames a follower sends in one write: with uvicorn's own 64 KiB write buffer this
bounds what a slow follower holds (measured: 1,000 followers taking whole windows and 500-event
pages at once grew the server by 1 GiB)."""

WAKE_AT_ONCE = 32
"""How many waiting followers one turn of the event loop wakes (measured with 1,000: 32 let the
run go on fastest; 4 and all at once were 3 to 7 times slower)."""

WATCH_BACKLOG = 1024
"""The most records a watch client may fall behind before the oldest are dropped."""

WRITE_LIMIT = 16_384
"""The most bytes of whole records joined into one write.

Every write holds whole records, so a client that keeps up reads whole records. A
``@mastra/client-js`` 0.10.14 client that falls more than 64 KiB behind loses records whatever
the server does: it reads 64 KiB at a time and drops a record cut between two reads (measured:
with one record per write too, only less often because that server is slower)."""

ENDED = ("success", "failed", "canceled")


class Streamed(StreamingResponse):
    """A streaming response that stops as soon as the client leaves, even while idle.

    Starlette stops listening for the disconnect under ASGI 2.4 and relies on a failing write
    instead; a follower waiting for a quiet run would then hold its subscription until the
    next event, and uvicorn logs every write to the dead socket.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as group:

            async def stream() -> None:
                with contextlib.suppress(OSError):  # the client left mid-write
                    await self.stream_response(send)
                group.cancel_scope.cancel()

            group.start_soon(stream)
            await self.listen_for_disconnect(receive)
            group.cancel_scope.cancel()


async def coalesce(records: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Yield ``records`` at once when the writer keeps up, joined (whole, up to
    :data:`WRITE_LIMIT` bytes) while it is behind.

    A pump task reads ahead by at most one write's worth, so the source's own backpressure
    still holds: when the client stops reading, the pump stops taking records.
    """
    batch: list[bytes] = []
    size = 0
    ready = asyncio.Event()
    room = asyncio.Event()
    room.set()
    failure: list[BaseException] = []
    ended = False

    async def pump() -> None:
        nonlocal size, ended
        try:
            async for record in records:
                while batch and size + len(record) > WRITE_LIMIT:
                    room.clear()
                    await room.wait()
                batch.append(record)
                size += len(record)
                ready.set()
        except Exception as exc:
            failure.append(exc)
        finally:
            ended = True
            ready.set()

    task = asyncio.get_running_loop().create_task(pump())
    try:
        while True:
            if batch:
                out = batch[0] if len(batch) == 1 else b"".join(batch)
                batch.clear()
                size = 0
                room.set()
                yield out
            elif ended:
                if failure:
                    raise failure[0]
                return
            else:
                ready.clear()
                await ready.wait()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def sse_frame(seq: int, kind: str, wire: Any) -> bytes:
    """One Server-Sent Event: ``id`` is the sequence number, ``event`` the event type."""
    return f"id: {seq}\nevent: {kind}\ndata: {dumps(wire)}\n\n".encode()


PING = b": ping\n\n"


class Feed:
    """The shared window of one live run's latest SSE frames (see the module docstring)."""

    def __init__(self, run: Run) -> None:
        self.frames: deque[tuple[int, bytes]] = deque()
        self.size = 0
        self.finished = False
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._waking = False
        self.unwatch = run.watch(self._on_event, "watch-v2")

    def _on_event(self, event: Event) -> None:
        # Called by the run for each event: append and wake, never wait.
        frame = sse_frame(event.seq, event.type, event.to_wire())
        frames = self.frames
        frames.append((event.seq, frame))
        self.size += len(frame)
        while len(frames) > 1 and (len(frames) > WINDOW or self.size > WINDOW_BYTES):
            self.size -= len(frames.popleft()[1])
        if event.type == "finish":
            self.finished = True
        if self._waiting and not self._waking:
            self._waking = True
            asyncio.get_running_loop().call_soon(self._wake_some)

    def _wake_some(self) -> None:
        # A few followers per turn of the loop, so that the run (whose next step is queued
        # meanwhile) goes on between them instead of waiting for all of them to write.
        for _ in range(WAKE_AT_ONCE):
            if not self._waiting:
                break
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
        if self._waiting:
            asyncio.get_running_loop().call_soon(self._wake_some)
        else:
            self._waking = False

    def changed(self, waiting: asyncio.Future[None] | None) -> asyncio.Future[None]:
        """A future done at the next event (``waiting``, a follower's own, if still pending)."""
        if waiting is not None and not waiting.done():
            return waiting
        waiter = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        return waiter

    def after(self, seq: int) -> tuple[list[bytes], int] | None:
        """The frames after ``seq`` and the last one's seq, or None if the window may have
        lost some of them (the follower must read the stored log)."""
        frames = self.frames
        if not frames or frames[-1][0] <= seq:
            return [], seq
        if frames[0][0] > seq + 1:
            return None
        start = max(0, len(frames) - (frames[-1][0] - seq))
        while start < len(frames) and frames[start][0] <= seq:
            start += 1
        end = min(len(frames), start + BATCH)
        return [frames[i][1] for i in range(start, end)], frames[end - 1][0]


async def stored_frames(
    run: Run, storage: Storage, after: int
) -> AsyncIterator[tuple[int, bytes, bool]]:
    """The run's events after ``after`` as ``(seq, frame, is_finish)``: stored ones page by
    page, then those not stored yet."""
    last = after
    while True:
        page = await storage.read_events(run.run_id, last, limit=PAGE)
        for stored in page:
            last = stored.seq
            yield (
                stored.seq,
                sse_frame(stored.seq, stored.type, stored.wire),
                stored.type == "finish",
            )
        if len(page) < PAGE:
            break
    for event in await run.history(last):  # the few not stored yet
        yield event.seq, sse_frame(event.seq, event.type, event.to_wire()), event.type == "finish"


async def follow(
    run: Run, feed: Feed | None, storage: Storage, after: int, keepalive: float
) -> AsyncIterator[bytes]:
    """An SSE follower of ``run`` from after ``after`` to its ``finish`` (pinged while idle).

    ``feed`` is None for a run that has ended: its stored log is all there is.
    """
    last = after
    waiting: asyncio.Future[None] | None = None
    caught_up = False  # the window holds only what came after the feed was made
    while True:
        # The stored log and the run's events not stored yet hold every event so far, so a
        # gap between what was read and the window is always read from them (never skipped).
        found = None if feed is None or not caught_up else feed.after(last)
        caught_up = True
        if found is None:
            batch: list[bytes] = []
            async for seq, frame, finish in stored_frames(run, storage, last):
                last = seq
                batch.append(frame)
                if finish or len(batch) >= BATCH:
                    yield b"".join(batch)
                    batch.clear()
                if finish:
                    return
            if batch:
                yield b"".join(batch)
            if feed is None:
                return
            continue
        frames, last = found
        if frames:
            await run.wait_stored(last)  # shown once stored: what a follower saw is the log
            yield b"".join(frames)
            continue
        if feed is None or feed.finished or run.status in ENDED:
            if feed is not None and feed.after(last) != ([], last):
                continue  # the finish arrived while we were writing
            return
        # asyncio.wait neither cancels the future nor makes a task per wait.
        waiting = feed.changed(waiting)
        done, _ = await asyncio.wait([waiting], timeout=keepalive)
        if not done:
            yield PING


def watch_records(run: Run, record: Callable[[Event | None], bytes]) -> AsyncIterator[bytes]:
    """Mastra's watch records of ``run``, ending with its final state (see the module docstring)."""
    pending: deque[bytes] = deque(maxlen=WATCH_BACKLOG)
    waiter: list[asyncio.Future[None]] = []
    done = False

    def on_event(event: Event) -> None:
        nonlocal done
        pending.append(record(event))
        if event.type == "finish":
            done = True
        if waiter and not waiter[0].done():
            waiter[0].set_result(None)

    unwatch = run.watch(on_event, "watch-v2")

    async def records() -> AsyncIterator[bytes]:
        nonlocal done
        try:
            while True:
                if pending:
                    out = list(pending)
                    pending.clear()
                    yield b"".join(out)
                    continue
                if done:
                    return
                if run.status not in ("pending", "running"):
                    yield record(None)  # the final state (also at a suspension)
                    return
                waiter[:] = [asyncio.get_running_loop().create_future()]
                waiting: list[asyncio.Future[Any]] = [waiter[0]]
                if run.status == "running":
                    waiting.append(asyncio.ensure_future(run.wait()))
                try:
                    await asyncio.wait(waiting, return_when="FIRST_COMPLETED")
                finally:  # also when the client leaves: nothing may be left waiting
                    for future in waiting:
                        if not future.done():
                            future.cancel()
        finally:
            unwatch()

    return records()
