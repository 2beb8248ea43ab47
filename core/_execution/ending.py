"""A run's end, coded once: ``after_workflow_run``, then ``finish`` (not for a suspension)
and, for a durable run, the end stored with it. An execution that ends uses it, and so does
``Run.cancel()`` for a run that is suspended or interrupted (no execution runs then)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from .._dispatch import Dispatcher
from ..context import RuntimeContext
from ..errors import RunClaimedError, StorageError, describe_error
from ..events import FinishEvent
from ..result import WorkflowResult

log = logging.getLogger("stepstream")


async def end_run(
    d: Dispatcher,
    workflow_id: str,
    result: WorkflowResult,
    *,
    runtime_context: RuntimeContext,
    meta: dict[str, Any],
    cancel_requested: Callable[[], bool],
) -> tuple[WorkflowResult, bool]:
    """End the run with ``result``: tell the plugins, send ``finish`` (not for a suspension)
    and store the end, waiting for it; all of it even if a cancel arrives meanwhile.

    Return the result (failed instead, if its end could not be stored) and whether a cancel
    from outside (one ``cancel_requested()`` does not know of) arrived meanwhile, which the
    caller re-raises.
    """
    d.notify("after_workflow_run", run_id=d.run_id, workflow_id=workflow_id, result=result)
    persist = d.persist
    if persist is not None and persist.abandoned:
        return result, False  # the process is stopping: the run stays as stored (interrupted)
    ended = result

    async def store() -> None:
        nonlocal ended
        assert persist is not None
        try:
            persist.set_context(runtime_context.to_dict())
            persist.set_meta(meta)
            persist.finish(result)
            await persist.commit(wait=True)
        except (StorageError, RunClaimedError) as exc:
            log.error("stepstream: run %s ended %s but could not be stored: %s",
                      d.run_id, result.status, exc)  # fmt: skip
            ended = dataclasses.replace(
                result, status="failed", result=None, error=describe_error(exc)
            )

    # (step, may it run again after a cancel): storing may (it is idempotent); the `finish`
    # emit may not, since a cancel during its backpressure wait comes after the event was
    # already dispatched.
    steps: list[tuple[Callable[[], Awaitable[Any]], bool]] = []
    if result.status != "suspended":
        steps.append((lambda: d.emit(FinishEvent), False))
    if persist is not None:
        steps.append((store, True))
    outside = False
    for step, again in steps:
        for _ in range(2 if again else 1):
            try:
                await step()
                break
            except asyncio.CancelledError:
                d.holding = False
                outside = outside or not cancel_requested()
    return ended, outside
