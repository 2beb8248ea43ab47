"""Claiming work: starts that this instance has no room for go to any instance that has.

With ``max_runs`` set (``stepstream serve --max-runs N``), an instance executes at most that
many runs at once. A ``start`` or ``start-async`` that arrives while it is full is queued in
PostgreSQL (:meth:`~stepstream.storage.postgres.PostgresStorage.enqueue`) and answered once
another instance has started it (``start``) or once the run ended (``start-async``, followed
through the stored log). Every instance runs a :class:`Claimer`: woken when any instance
queues a run (``LISTEN/NOTIFY``), when one of its own runs ends, and every ``follow_recheck``
seconds, it takes as many queued runs as it has room for (``SKIP LOCKED``) and starts them.
Without ``max_runs`` (the default) nothing is queued: every instance starts what it is asked
to; ``stream`` always starts where it is asked, since its caller reads the run's own stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from ..context import RuntimeContext
from ..errors import RunClaimedError
from ..run import Run
from ._seam import Registry

if TYPE_CHECKING:
    from ..result import WorkflowResult

__all__ = ["Claimer", "queue_start"]

log = logging.getLogger("stepstream.server")


def full(runs: Registry) -> bool:
    """Whether this instance executes as many runs as it may (and may queue the others)."""
    limit = runs.max_runs
    return bool(limit) and hasattr(runs.storage, "enqueue") and executing(runs) >= limit


def executing(runs: Registry) -> int:
    return sum(1 for entry in runs.entries.values() if entry.run.executing)


async def queue_start(
    runs: Registry,
    key: str,
    run: Run,
    input_data: Any,
    context: RuntimeContext | None,
    *,
    wait: bool,
) -> WorkflowResult | None:
    """Queue ``run``'s start for an instance with room; wait until it has started (or, with
    ``wait``, ended) and return its result then (``None`` without ``wait``)."""
    storage: Any = runs.storage
    runs.forget(key, run)  # the instance that takes it makes its own
    await storage._listening()  # hear its start and its events
    follower = storage.follow(run.run_id, await_creation=True, through_suspension=False)
    await storage.enqueue(
        run.run_id, run.workflow.id, input_data, {} if context is None else context.to_dict()
    )
    async with contextlib.aclosing(follower) as events:
        async for _ in events:
            if not wait:
                return None
    loaded = await runs.workflow(key).load_run(run.run_id, storage=runs.storage)
    return loaded.result


class Claimer:
    """Takes queued runs while this instance has room (see the module docstring)."""

    def __init__(self, runs: Registry) -> None:
        self.runs = runs
        self.woken = asyncio.Event()

    def wake(self) -> None:
        self.woken.set()

    async def run(self) -> None:
        """Take and start queued runs until canceled."""
        storage: Any = self.runs.storage
        if not self.runs.max_runs or not hasattr(storage, "take_queued"):
            return
        storage.on_queued(self.wake)
        ids = {wf.id: key for key, wf in self.runs.workflows.items()}
        while True:
            self.woken.clear()
            try:
                await storage._listening()
                room = self.runs.max_runs - executing(self.runs)
                for queued in await storage.take_queued(list(ids), room):
                    await self._start(ids[queued.workflow_id], queued)
            except asyncio.CancelledError:
                raise
            except Exception:  # storage down for now: try again at the next wake-up
                log.warning("stepstream: taking queued runs failed", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.woken.wait(), storage.follow_recheck)

    async def _start(self, key: str, queued: Any) -> None:
        runs, storage = self.runs, self.runs.storage
        found = await runs.create(key, queued.run_id)
        if isinstance(found, Run) and found.status == "pending":
            context = RuntimeContext(queued.runtime_context)
            runs.background(found.start(queued.input, context), key, found)
            with contextlib.suppress(RunClaimedError):  # started by an earlier taker
                await found.started()
        await storage.queued_done(queued.run_id)  # type: ignore[attr-defined]
