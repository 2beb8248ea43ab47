"""The consumer's side of a run: :class:`RunStream` (async) and :class:`SyncRunStream`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from .channel import EventChannel
from .context import RuntimeContext
from .errors import StreamError
from .events import Event
from .result import WorkflowResult

if TYPE_CHECKING:
    from .run import Run

__all__ = ["DEFAULT_BUFFER_SIZE", "ENDED", "RunStream", "SyncRunStream", "iterate_sync"]

T = TypeVar("T")


def iterate_sync(runner: asyncio.Runner, events: AsyncGenerator[T, None]) -> Iterator[T]:
    """Iterate an async generator from sync code on ``runner``'s loop; close it at the end
    (also when the caller stops early)."""
    try:
        while True:
            try:
                yield runner.run(anext(events))
            except StopAsyncIteration:
                return
    finally:
        runner.run(events.aclose())


DEFAULT_BUFFER_SIZE = 256
"""Events a stream holds before its run waits for the consumer."""


class _Ended:
    """The channel of a run that will emit nothing more."""

    async def receive(self) -> Event:
        raise StopAsyncIteration

    def end(self) -> None:
        pass

    def close(self) -> None:
        pass


ENDED: EventChannel = _Ended()
"""A channel that is already at its end (for replays of finished runs)."""


class RunStream:
    """The events of one run for one consumer: an async iterator and async context manager.

    ``get_workflow_state()`` waits for the run's current execution and returns its
    :class:`WorkflowResult`. Consume the stream (or leave it) while waiting: a full buffer
    pauses the run.
    """

    def __init__(
        self,
        run: Run,
        channel: EventChannel,
        start: tuple[Any, RuntimeContext | None] | None,
        close_on_suspend: bool,
        replay: Callable[[], Awaitable[list[Event]]] | None = None,
    ) -> None:
        self.run = run
        self.channel = channel
        self._replay = replay
        self.close_on_suspend = close_on_suspend
        self._start = start
        self._iterated = False
        self.ended = False
        self._error: BaseException | None = None

    def _ensure_started(self) -> None:
        if self._start is not None:
            input_data, runtime_context = self._start
            self._start = None
            self.run._begin(input_data, runtime_context)

    def fail(self, error: BaseException) -> None:
        """The run's execution died with ``error``: end the stream and raise it to the consumer.

        Called inside the run's task, which then ends with ``error`` too: the stream is where
        the error is delivered, so the task's copy is marked as retrieved, or asyncio would
        also log "Task exception was never retrieved".
        """
        if self._error is None:  # the first reason is the one the consumer gets
            self._error = error
        self.channel.end()
        task = asyncio.current_task()
        if task is not None:
            task.add_done_callback(_retrieve_exception)

    def __aiter__(self) -> AsyncGenerator[Event, None]:
        if self._iterated:
            raise StreamError("a run's stream can be consumed once", run_id=self.run.run_id)
        self._iterated = True
        self._ensure_started()
        return self._events()

    async def _events(self) -> AsyncGenerator[Event, None]:
        complete = False
        last = -1
        # A durable run's events are yielded once stored: what a consumer is shown is what
        # the log holds after any crash (never an event that a recovery would replace).
        persist = self.run._dispatcher.persist
        try:
            if self._replay is not None:
                for event in await self._replay():
                    if persist is not None and event.seq > persist.committed_seq:
                        await persist.committed(event.seq)
                    last = event.seq
                    yield event
            while True:
                try:
                    event = await self.channel.receive()
                except StopAsyncIteration:
                    break
                if event.seq <= last:  # replayed already
                    continue
                if persist is not None and event.seq > persist.committed_seq:
                    await persist.committed(event.seq)
                    if persist.abandoned and event.seq > persist.committed_seq:
                        break  # never stored (the process stopped executing the run)
                yield event
            complete = True
            if self._error is not None and not isinstance(self._error, asyncio.CancelledError):
                raise self._error
        finally:
            self.ended = True
            if not complete:
                await self._leave()

    async def _leave(self) -> None:
        self.channel.close()
        if self.run.status == "running":
            await self.run.cancel()

    async def __aenter__(self) -> RunStream:
        self._ensure_started()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if not self.ended:
            self.ended = True
            await self._leave()

    async def aclose(self) -> None:
        """Leave the stream: later events are not kept for it; a running run is canceled."""
        await self.__aexit__(None, None, None)

    async def get_workflow_state(self) -> WorkflowResult:
        """Wait for the current execution's end (or suspension) and return its result."""
        self._ensure_started()
        return await self.run.wait()

    @property
    def usage(self) -> dict[str, Any] | None:
        """The run's model usage so far, nested agent steps and workflows summed (Mastra's
        ``stream.usage``); live: each model response counts once its ``step-usage`` event is
        sent. See :attr:`Run.usage`."""
        return self.run.usage


def _retrieve_exception(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


class SyncRunStream:
    """A :class:`RunStream` driven from sync code by a private event loop."""

    def __init__(self, stream: RunStream) -> None:
        self._stream = stream
        self._runner = asyncio.Runner()
        self._iterated = False

    def __iter__(self) -> Iterator[Event]:
        if self._iterated:
            raise StreamError("a run's stream can be consumed once", run_id=self._stream.run.run_id)
        self._iterated = True
        yield from iterate_sync(self._runner, self._runner.run(self._open()))

    async def _open(self) -> AsyncGenerator[Event, None]:
        # Starting the run needs the private loop to be running.
        return self._stream.__aiter__()

    def get_workflow_state(self) -> WorkflowResult:
        """Wait for the run's current execution and return its result."""
        return self._runner.run(self._stream.get_workflow_state())

    @property
    def usage(self) -> dict[str, Any] | None:
        """The run's model usage so far (see :attr:`RunStream.usage`)."""
        return self._stream.usage

    def close(self) -> None:
        """Leave the stream and release its event loop."""
        try:
            if not self._stream.ended:
                self._runner.run(self._stream.aclose())
        finally:
            self._runner.close()

    def __enter__(self) -> SyncRunStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
