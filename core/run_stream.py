"""The consumer's side of a run: :class:`RunStream` (async) and :class:`SyncRunStream`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Iterator
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ._loop import thread_runner
from .context import RuntimeContext
from .errors import StreamError
from .events import Event
from .result import WorkflowResult

if TYPE_CHECKING:
    from .channel import EventChannel
    from .hub import Subscription
    from .status import RunStatus

__all__ = ["DEFAULT_BUFFER_SIZE", "RunStream", "StreamedRun", "SyncRunStream", "iterate_sync"]

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


class StreamedRun(Protocol):
    """What a stream needs of its run (a :class:`~stepstream.run.Run`, which makes its
    streams, so is built on this module)."""

    @property
    def run_id(self) -> str:
        """The run's id."""
        ...

    @property
    def status(self) -> RunStatus:
        """The run's status now."""
        ...

    @property
    def usage(self) -> dict[str, Any] | None:
        """The run's model usage so far."""
        ...

    def _begin(self, input_data: Any, runtime_context: RuntimeContext | None) -> object:
        """Start the run's execution (a stream starts it when first iterated or entered)."""
        ...

    async def cancel(self) -> WorkflowResult | None:
        """Cancel the run."""
        ...

    async def wait(self) -> WorkflowResult:
        """Wait for the current execution's end (or suspension) and return its result."""
        ...


class RunStream:
    """A stream of one run's events: an async iterator and async context manager over a
    subscription of the run's hub (:mod:`stepstream.hub`).

    ``get_workflow_state()`` waits for the run's current execution and returns its
    :class:`WorkflowResult`. Consume the primary stream (or leave it) while waiting: a full
    buffer pauses the run.
    """

    def __init__(
        self,
        run: StreamedRun,
        subscription: Subscription,
        start: tuple[Any, RuntimeContext | None] | None,
    ) -> None:
        self.run = run
        self.subscription = subscription
        self._start = start
        self._iterated = False

    @property
    def primary(self) -> bool:
        """Whether this is the run's primary stream (its backpressure pauses the run, and
        leaving it early cancels a running run)."""
        return self.subscription.channel is not None

    @property
    def channel(self) -> EventChannel | None:
        """The primary stream's bounded channel (``open_event_stream``'s answer), else None."""
        return self.subscription.channel

    @property
    def close_on_suspend(self) -> bool:
        """Whether the stream ends when the run suspends."""
        return self.subscription.close_on_suspend

    @property
    def ended(self) -> bool:
        """Whether the stream has ended."""
        return self.subscription.ended

    def _ensure_started(self) -> None:
        if self._start is not None:
            input_data, runtime_context = self._start
            self._start = None
            self.run._begin(input_data, runtime_context)

    def __aiter__(self) -> AsyncGenerator[Event, None]:
        if self._iterated:
            raise StreamError("a run's stream can be consumed once", run_id=self.run.run_id)
        self._iterated = True
        self._ensure_started()
        return self._events()

    async def _events(self) -> AsyncGenerator[Event, None]:
        subscription = self.subscription
        complete = False
        try:
            async for event in subscription:
                yield event
            complete = True
        finally:
            if not complete:
                await self._leave()
        if subscription.end_reason == "lagged":
            raise StreamError(
                f"run {self.run.run_id}: the stream fell behind the events the run holds in "
                "memory, and those it missed are gone (a durable run's stream reads them "
                "from storage)",
                run_id=self.run.run_id,
            )
        error = subscription.error
        if error is not None and not isinstance(error, asyncio.CancelledError):
            raise error

    async def _leave(self) -> None:
        await self.subscription.aclose()
        if self.primary and self.run.status == "running":
            await self.run.cancel()

    async def __aenter__(self) -> RunStream:
        self._ensure_started()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if not self.ended:
            await self._leave()

    async def aclose(self) -> None:
        """Leave the stream: later events are not kept for it; leaving the primary stream
        cancels a running run."""
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


class SyncRunStream:
    """A :class:`RunStream` driven from sync code, on the thread's event loop
    (:func:`stepstream._loop.thread_runner`, shared with every sync twin of the thread)."""

    def __init__(self, stream: RunStream) -> None:
        self._stream = stream
        self._runner = thread_runner()
        self._iterated = False

    def __iter__(self) -> Iterator[Event]:
        if self._iterated:
            raise StreamError("a run's stream can be consumed once", run_id=self._stream.run.run_id)
        self._iterated = True
        yield from iterate_sync(self._runner, self._runner.run(self._open()))

    async def _open(self) -> AsyncGenerator[Event, None]:
        # Starting the run needs the loop to be running.
        return self._stream.__aiter__()

    def get_workflow_state(self) -> WorkflowResult:
        """Wait for the run's current execution and return its result."""
        return self._runner.run(self._stream.get_workflow_state())

    @property
    def usage(self) -> dict[str, Any] | None:
        """The run's model usage so far (see :attr:`RunStream.usage`)."""
        return self._stream.usage

    def close(self) -> None:
        """Leave the stream (the thread's event loop lives on for other calls)."""
        if not self._stream.ended:
            self._runner.run(self._stream.aclose())

    def __enter__(self) -> SyncRunStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
