"""Steps waiting in place for an event (``wait_for_event`` in a run kept in memory)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..graph import EventStep
from ..result import StepRecord


class EventWaiters:
    """The steps of one execution waiting for events, and the events sent before any waited.

    ``kept`` is shared with the run, which keeps there an event sent before its step was
    reached (also for a durable run, whose step then runs at once instead of suspending).
    """

    def __init__(self, run_id: str, kept: dict[str, Any]) -> None:
        self.run_id = run_id
        self.kept = kept
        self._waiting: dict[str, list[asyncio.Future[Any]]] = {}
        self._at: dict[tuple[str, ...], asyncio.Future[Any]] = {}  # the same, by step path

    async def wait(
        self, step: EventStep, sid: str, path: tuple[str, ...], record: StepRecord
    ) -> Any:
        """The data of ``step``'s event: kept from before, or when :meth:`wake` gives it.

        :raises StepTimeoutError: if it does not come within the step's timeout, counted
            from the step's start.
        """
        if step.event in self.kept:
            return self.kept.pop(step.event)
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(step.event, []).append(waiter)
        self._at[path] = waiter
        try:
            if step.wait_timeout is None:
                return await waiter
            left = record.started_at / 1000 + step.wait_timeout - time.time()
            try:
                return await asyncio.wait_for(waiter, max(left, 0))
            except TimeoutError:
                raise step.timed_out(self.run_id, sid) from None
        finally:
            self._at.pop(path, None)
            others = self._waiting.get(step.event, [])
            if waiter in others:
                others.remove(waiter)
            if not others:
                self._waiting.pop(step.event, None)

    def wake(self, event: str, data: Any) -> bool:
        """Give ``data`` to the steps waiting for ``event`` (all of them, as Mastra's emitter
        does); return whether any was."""
        woken = [w for w in self._waiting.pop(event, []) if not w.done()]
        for waiter in woken:
            waiter.set_result(data)
        return bool(woken)

    def paths(self) -> list[list[str]]:
        """The id paths of the steps waiting now."""
        return [list(path) for path in self._at]

    def wake_at(self, path: tuple[str, ...], data: Any) -> bool:
        """Give ``data`` to the step waiting at ``path`` (a ``resume()`` naming it); return
        whether one was."""
        waiter = self._at.get(path)
        if waiter is None or waiter.done():
            return False
        waiter.set_result(data)
        return True
