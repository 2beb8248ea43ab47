"""Where a step's function runs: the :class:`StepExecutor` seam and the in-process default.

The engine asks the ``make_step_executor`` hook once per step and run; a plugin may answer
with an executor of its own (``stepstream.plugins.ray_executor.RayExecutor`` runs steps as
Ray tasks). Without an answer the step runs in this process: an ``async`` function on the
event loop, a sync one in a worker thread. Everything around the call (events, hooks,
validation, retries, timeouts, state) stays in the engine, whichever executor runs it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .context import StepContext
    from .steps import Step

__all__ = ["LocalExecutor", "StepExecutor", "run_locally"]


@runtime_checkable
class StepExecutor(Protocol):
    """Runs one attempt of a step's function and returns its output.

    ``execute`` is awaited in the run's event loop. Events the function produces
    (``ctx.write()``, ``ctx.emit()``) must reach ``ctx`` in order, before ``execute``
    returns; raising ``Suspend`` (``ctx.suspend()``) suspends the step, any other exception
    fails the attempt. When the awaiting task is canceled (the run is canceled, or the
    attempt timed out), the executor must stop the function's work before re-raising.
    """

    name: str
    """The executor's name; a step asking for it by name (``step(executor=...)``) gets it."""

    async def execute(self, step: Step[Any, Any], ctx: StepContext[Any]) -> Any:
        """Run ``step``'s function once with ``ctx`` and return what it returned."""
        ...


def run_locally(step: Step[Any, Any], ctx: StepContext[Any]) -> Awaitable[Any]:
    """Call ``step``'s function in this process: async on the loop, sync in a thread."""
    return step.run(ctx) if step.is_async else asyncio.to_thread(step.call_sync, ctx)


class LocalExecutor:
    """The in-process executor: what every step uses unless a plugin provides another.

    A plugin may return it from ``make_step_executor`` to keep a step local.
    """

    name = "local"

    async def execute(self, step: Step[Any, Any], ctx: StepContext[Any]) -> Any:
        """Run the step's function in this process."""
        return await run_locally(step, ctx)
