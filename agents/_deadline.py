"""An overall deadline on one model response, counting only the time spent waiting on it.

A read timeout alone never fires on a server that trickles a byte a second; this bounds the
whole response. Time the agent's consumer holds the stream (backpressure) is not counted, so a
slow reader never fails the model. One timer serves the whole response: it is re-armed only
when it fires while the consumer holds the stream, so each chunk costs two clock reads, not a
timer of its own (``asyncio.timeout`` per chunk costs ~5 us).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


class DeadlineExceeded(Exception):
    """The response took longer than its deadline (turned into a ``ModelError``)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the model's answer took longer than its deadline of {seconds:g}s")
        self.seconds = seconds


class Deadline:
    """At most ``seconds`` of waiting on the model; ``None`` waits for ever."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self._used = 0.0
        self._since: float | None = None
        self._task: asyncio.Task[object] | None = None
        self._cancelling = 0
        self._handle: asyncio.TimerHandle | None = None
        self._fired = False

    async def wait(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable``, counting the time against the deadline.

        :raises DeadlineExceeded: when the deadline passes meanwhile (``awaitable`` is
            canceled).
        """
        if self.seconds is None:
            return await awaitable
        loop = asyncio.get_running_loop()
        if self._used >= self.seconds:
            raise DeadlineExceeded(self.seconds)
        task = asyncio.current_task()
        if task is not self._task:
            self._task = task
            self._cancelling = task.cancelling() if task is not None else 0
        self._since = loop.time()
        if self._handle is None:
            self._handle = loop.call_at(self._since + self.seconds - self._used, self._fire)
        try:
            return await awaitable
        except asyncio.CancelledError:
            if self._fired and task is not None and task.uncancel() <= self._cancelling:
                raise DeadlineExceeded(self.seconds) from None
            raise
        finally:
            self._used += loop.time() - self._since
            self._since = None

    def _fire(self) -> None:
        self._handle = None
        assert self.seconds is not None
        loop = asyncio.get_running_loop()
        now = loop.time()
        used = self._used + (now - self._since if self._since is not None else 0.0)
        if self._since is None or used < self.seconds:
            # The consumer held the stream meanwhile: that time does not count.
            self._handle = loop.call_at(now + self.seconds - used, self._fire)
            return
        if self._task is not None:
            self._fired = True
            self._task.cancel()

    def close(self) -> None:
        """Drop the timer (the response has ended)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
