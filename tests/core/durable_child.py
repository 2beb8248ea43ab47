"""A child process for the durability tests: ``python -m tests.core.durable_child CASE ...``.

``crash DB MARKS RUN_ID``: runs the 5-step crash workflow; step s3 announces itself on stdout
and blocks, for the parent to kill the process with SIGKILL.
``suspend DB RUN_ID``: runs the approval workflow until it suspends, prints the events it
streamed as JSON lines, and exits.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from stepstream import Step, StepContext, Workflow, get_plugin_manager
from stepstream.storage.sqlite import SQLiteStorage

from ..conformance.workflows import i_suspend_resume


def crash_workflow(marks: Path) -> Workflow:
    """Five steps; each appends its id to ``marks/done.txt`` when it completes. The first time
    (no ``marks/recovering``), s3 prints ``s3-running`` and blocks forever."""

    def make(step_id: str) -> Step[Any, Any]:
        async def body(ctx: StepContext[Any]) -> Any:
            if step_id == "s3" and not (marks / "recovering").exists():
                print("s3-running", flush=True)
                await asyncio.Event().wait()
            with (marks / "done.txt").open("a") as done:
                done.write(step_id + "\n")
            return {"n": ctx.input_data["n"] + 1}

        return Step(id=step_id, execute=body)

    wf = Workflow(id="crash-wf")
    for i in range(1, 6):
        wf.then(make(f"s{i}"))
    return wf.commit()


async def crash(db: str, marks: str, run_id: str) -> None:
    wf = crash_workflow(Path(marks))
    pm = get_plugin_manager(load_entrypoints=False)
    # Each step waits for its checkpoint: every step completed before the kill is stored.
    store = SQLiteStorage(db, durability="sync")
    run = await wf.create_run(run_id, plugin_manager=pm, storage=store)
    await run.start({"n": 0})


async def suspend(db: str, run_id: str) -> None:
    pm = get_plugin_manager(load_entrypoints=False)
    store = SQLiteStorage(db)
    run = await i_suspend_resume().create_run(run_id, plugin_manager=pm, storage=store)
    async for event in run.stream(input_data={"item": "invoice-42"}, close_on_suspend=True):
        print(json.dumps({"seq": event.seq, "wire": event.to_wire()}), flush=True)
    await store.close()


if __name__ == "__main__":
    case, *args = sys.argv[1:]
    asyncio.run(crash(*args) if case == "crash" else suspend(*args))
