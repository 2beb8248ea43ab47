"""Recovery of interrupted runs: runs whose process died (or stopped) mid-run.

A host that keeps durable runs (``stepstream serve``, a worker of your own) calls
:func:`recover_interrupted` when it starts, and again from time to time
(:func:`keep_recovering`): every stored run of its workflows that reads ``interrupted`` is
claimed (a compare-and-set: of several hosts recovering at once, exactly one gets each run) and
resumed after its last stored checkpoint. Completed steps are not run again; the step that was
running when the owner died runs again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ._scope import ResumeRequest
from .errors import RunClaimedError, RunStateError

if TYPE_CHECKING:
    from .plugin_manager import PluginManager
    from .run import Run
    from .storage import Storage
    from .workflow import Workflow

__all__ = ["keep_recovering", "recover_interrupted"]

log = logging.getLogger("stepstream")


async def recover_interrupted(
    workflows: Iterable[Workflow],
    storage: Storage,
    *,
    plugin_manager: PluginManager | None = None,
    limit: int = 1000,
) -> list[Run]:
    """Claim and resume the interrupted runs of ``workflows`` kept in ``storage``.

    Returns the runs now executing here (``await run.wait()`` gives each one's result); runs
    another host claimed first are left to it.

    :param limit: The most runs taken up in one call.
    """
    by_id = {wf.id: wf for wf in workflows}
    taken: list[Run] = []
    for summary in await storage.list_runs(status="interrupted", limit=limit):
        wf = by_id.get(summary.workflow_id)
        if wf is None:
            continue
        try:
            run = await wf.load_run(summary.run_id, storage=storage, plugin_manager=plugin_manager)
            if run.status != "interrupted":
                continue
            await run._claim("interrupted")
        except (RunClaimedError, RunStateError) as exc:  # another host took it first
            log.debug("stepstream: not recovering run %s: %s", summary.run_id, exc)
            continue
        crash = getattr(storage, "_crash", None)
        if crash is not None:
            crash("recovery.after-claim")
        run._interrupted = False
        run._launch(ResumeRequest(path=None, data=None))
        log.info("stepstream: recovering run %s of %s", run.run_id, wf.id)
        taken.append(run)
    return taken


async def keep_recovering(
    workflows: Iterable[Workflow],
    storage: Storage,
    *,
    plugin_manager: PluginManager | None = None,
    interval: float | None = None,
    taken: Callable[[Run], Any] = lambda run: None,
) -> None:
    """Call :func:`recover_interrupted` now and then every ``interval`` seconds (by default a
    third of the storage's lease) until canceled; ``taken(run)`` is called for each run taken
    up (a server adds it to its live runs)."""
    workflows = list(workflows)
    every = interval if interval is not None else storage.lease_seconds / 3
    while True:
        try:
            for run in await recover_interrupted(workflows, storage, plugin_manager=plugin_manager):
                taken(run)
        except Exception:  # storage down for now: try again next time
            log.warning("stepstream: recovery of interrupted runs failed", exc_info=True)
        await asyncio.sleep(every)
