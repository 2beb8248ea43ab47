"""Sending a run's events to HTTP clients: coalesced writes, SSE followers and watchers.

Every client is a subscriber of the run's hub (``run.subscribe``, :mod:`stepstream.hub`),
which gives it every event after its position, stored then live, with no gap and no
duplicate. Only the run's own ``Run.stream()`` consumer (``POST .../stream``) may slow a run
down, by its bounded buffer; SSE followers (``GET .../runs/{runId}/events``) and watchers
(``GET .../watch``) never do: one that falls behind reads on from the stored log, a page at a
time (the hub's rule).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ..events import Event
from ..run import Run
from ..status import FINAL
from ..storage import StoredEvent
from ._remote import RemoteSubscription
from ._wire import dumps

if TYPE_CHECKING:
    from ._remote import RemoteRun

WRITE_LIMIT = 16_384
"""The most bytes of whole records joined into one write.

Every write holds whole records, so a client that keeps up reads whole records. A
``@mastra/client-js`` 0.10.14 client that falls more than 64 KiB behind loses records whatever
the server does: it reads 64 KiB at a time and drops a record cut between two reads (measured:
with one record per write too, only less often because that server is slower)."""

ENDED = FINAL


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


class Frames:
    """The SSE frames of the latest events of every run, each encoded once however many
    followers send it (a thousand followers of a run would otherwise encode each event a
    thousand times); at most ``size`` are kept, the oldest dropped first."""

    def __init__(self, size: int = 8192) -> None:
        self.size = size
        self._frames: OrderedDict[tuple[str, int], bytes] = OrderedDict()

    def of(self, event: Event) -> bytes:
        """The SSE frame of ``event``."""
        return self._frame(event.run_id, event.seq, event.type, event.to_wire)

    def of_stored(self, run_id: str, event: StoredEvent) -> bytes:
        """The SSE frame of ``run_id``'s ``event`` as stored."""
        return self._frame(run_id, event.seq, event.type, lambda: event.wire)

    def _frame(self, run_id: str, seq: int, kind: str, wire: Callable[[], Any]) -> bytes:
        key = (run_id, seq)
        frame = self._frames.get(key)
        if frame is None:
            frame = self._frames[key] = sse_frame(seq, kind, wire())
            if len(self._frames) > self.size:
                self._frames.popitem(last=False)
        return frame


async def follow(
    run: Run | RemoteRun, after: int, keepalive: float, frames: Frames | None = None
) -> AsyncIterator[bytes]:
    """An SSE follower of ``run`` from after ``after`` to its ``finish`` (pinged while idle);
    a run executing in another process is followed the same way, through its stored log, whose
    events are sent as they are stored (not rebuilt as :class:`Event` objects first)."""
    frames = frames or Frames(size=0)  # nothing kept: one follower encodes each event once
    async with run.subscribe(after) as subscription:
        if isinstance(subscription, RemoteSubscription):
            remote, run_id = subscription, run.run_id

            async def frame() -> bytes:
                return frames.of_stored(run_id, await remote.next_stored())
        else:
            local = aiter(subscription)

            async def frame() -> bytes:
                return frames.of(await anext(local))

        while True:
            # One read at a time, waited for with a timeout that never cancels it (a canceled
            # read would end the subscription).
            reading = asyncio.ensure_future(frame())
            try:
                while True:
                    done, _ = await asyncio.wait([reading], timeout=keepalive)
                    if done:
                        break
                    yield PING
            finally:  # the client left: the read goes before the subscription
                if not reading.done():
                    reading.cancel()
                    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                        await reading
            try:
                yield reading.result()
            except StopAsyncIteration:
                return


async def watch_records(run: Run, record: Callable[[Event | None], bytes]) -> AsyncIterator[bytes]:
    """Mastra's watch records of ``run`` from now on, ending with its final state (at its
    ``finish``, or when it suspends)."""
    async with run.subscribe(run.last_seq, close_on_suspend=True) as subscription:
        async for event in subscription:
            yield record(event)
            if event.type == "finish":
                return
    yield record(None)  # the final state (also at a suspension)
