"""A base for exporters: events are queued on the event loop, exported by a worker thread.

``on_event`` only enqueues (no I/O on the loop's hot path). A daemon thread takes batches from
the queue and calls :meth:`ThreadedExporter.export`; after a run's ``finish`` event (or when a
run suspends) it calls :meth:`ThreadedExporter.finish_run`, so files are flushed and batches
sent when the run ends. If the worker falls behind by more than ``max_backlog`` events,
``on_event`` returns a waiter and the run pauses until the worker catches up (backpressure,
never silent loss). If exporting fails, the next ``on_event`` raises a :class:`PluginError`:
the plugin manager isolates it, counts it and reports it, and the run goes on.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from typing import TYPE_CHECKING, Any

from stepstream.errors import PluginError
from stepstream.hookspecs import hookimpl

if TYPE_CHECKING:
    from stepstream.events import Event
    from stepstream.result import WorkflowResult

__all__ = ["ThreadedExporter"]

log = logging.getLogger("stepstream.exporters")

_STOP = object()


class _RunEnd:
    __slots__ = ("run_id",)

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id


class ThreadedExporter:
    """Subclass and implement :meth:`export` (and :meth:`finish_run` if runs need closing).

    :param name: Used in error messages and the worker thread's name.
    :param batch_size: The most events handed to one :meth:`export` call.
    :param max_backlog: Queued events beyond which runs wait for the worker.
    """

    def __init__(self, name: str, *, batch_size: int = 256, max_backlog: int = 10_000) -> None:
        self.name = name
        self.batch_size = batch_size
        self.max_backlog = max_backlog
        self.exported = 0
        self.failures = 0
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._pending = 0
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    # -- for subclasses (called on the worker thread) ----------------------------------------

    def export(self, events: list[Event]) -> None:
        """Export a batch of events, in order."""
        raise NotImplementedError

    def finish_run(self, run_id: str) -> None:
        """The run's events so far are all exported: flush or close what belongs to it."""

    def shutdown(self) -> None:
        """The exporter is closing: release everything."""

    # -- hooks (called on the event loop) -------------------------------------------------------

    @hookimpl
    def on_event(self, event: Event) -> asyncio.Future[None] | None:
        """Queue the event; raise a failure the worker met since the last call."""
        self._put(event)
        if event.type == "finish":
            self._put(_RunEnd(event.run_id))
        error, self._error = self._error, None
        if error is not None:
            raise PluginError(
                f"exporter {self.name!r} failed: {type(error).__name__}: {error}",
                plugin=self.name,
                hook="on_event",
            ) from error
        if self._pending <= self.max_backlog:
            return None
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        with self._lock:
            self._waiters.append((loop, waiter))
        return waiter

    @hookimpl
    def after_workflow_run(self, run_id: str, result: WorkflowResult) -> None:
        """A suspended run emits no ``finish``: flush what it has so far."""
        if result.status == "suspended":
            self._put(_RunEnd(run_id))

    # -- control ---------------------------------------------------------------------------------

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Block until everything queued so far is exported; return False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    async def aflush(self, within: float | None = 10.0) -> bool:
        """:meth:`flush` without blocking the event loop."""
        return await asyncio.to_thread(self.flush, within)

    def close(self, timeout: float | None = 10.0) -> None:
        """Export what is queued, then stop the worker and call :meth:`shutdown`."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout)
            self._thread = None
        self.shutdown()

    # -- internals -------------------------------------------------------------------------------

    def _put(self, item: Any) -> None:
        with self._lock:
            self._pending += 1
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name=f"stepstream-exporter-{self.name}", daemon=True
                )
                self._thread.start()
        self._queue.put(item)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            batch: list[Any] = [item]
            while len(batch) < self.batch_size:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    self._queue.put(_STOP)
                    break
                batch.append(nxt)
            self._handle(batch)
            with self._lock:
                self._pending -= len(batch)
                if self._pending == 0:
                    self._idle.notify_all()
                if self._waiters and self._pending <= self.max_backlog // 2:
                    waiters, self._waiters = self._waiters, []
                    for loop, waiter in waiters:
                        loop.call_soon_threadsafe(_release, waiter)

    def _handle(self, batch: list[Any]) -> None:
        events: list[Event] = []
        for item in batch:
            if isinstance(item, _RunEnd):
                self._safely(self.export, events)
                events = []
                self._safely(self.finish_run, item.run_id)
            else:
                events.append(item)
        self._safely(self.export, events)

    def _safely(self, fn: Any, arg: Any) -> None:
        if isinstance(arg, list) and not arg:
            return
        try:
            fn(arg)
            if isinstance(arg, list):
                self.exported += len(arg)
        except Exception as exc:
            self.failures += 1
            self._error = exc
            log.error("exporter %r failed", self.name, exc_info=exc)


def _release(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
