"""A child process for the crash-point and claim tests: ``python -m tests.core.crash_child``.

``MODE BACKEND TARGET MARKS RUN_ID [DURABILITY]``, where BACKEND is ``sqlite`` (TARGET a file)
or ``postgres`` (TARGET ``dsn|schema``):

- ``run``: starts the 5-step workflow and prints every event its ``Run.stream()`` shows, as a
  JSON line (what a consumer saw); ``STEPSTREAM_CRASH_AT`` kills it at a storage write.
- ``suspend``: runs the approval workflow until it suspends.
- ``resume``: loads the run, prints ``ready``, waits for a line on stdin, resumes it; prints
  ``won`` or ``claimed``.
- ``recover``: prints ``ready``, waits for a line on stdin, then ``recover_interrupted()``;
  prints ``won`` (and waits for the run) or ``none``.

Every step appends its id to ``MARKS/done.txt`` when its body completes.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from stepstream import (
    RunClaimedError,
    RunStateError,
    Step,
    StepContext,
    Workflow,
    get_plugin_manager,
    recover_interrupted,
)
from stepstream.storage import Storage
from stepstream.storage.postgres import PostgresStorage
from stepstream.storage.sqlite import SQLiteStorage


def mark(marks: Path, step_id: str) -> None:
    with (marks / "done.txt").open("a") as done:
        done.write(step_id + "\n")


def five_steps(marks: Path) -> Workflow:
    def make(step_id: str) -> Step[Any, Any]:
        async def body(ctx: StepContext[Any]) -> Any:
            mark(marks, step_id)
            return {"n": ctx.input_data["n"] + 1}

        return Step(id=step_id, execute=body)

    wf = Workflow(id="five")
    for i in range(1, 6):
        wf.then(make(f"s{i}"))
    return wf.commit()


def approval(marks: Path) -> Workflow:
    async def approve(ctx: StepContext[Any]) -> Any:
        if ctx.resume_data is None:
            ctx.suspend({"ask": "ok?"})
        mark(marks, "approve")
        return {"by": ctx.resume_data["by"]}

    return Workflow(id="approval").then(Step(id="approve", execute=approve)).commit()


def open_storage(backend: str, target: str, durability: str) -> Storage:
    if backend == "sqlite":
        return SQLiteStorage(target, durability=durability)
    dsn, _, schema = target.partition("|")
    return PostgresStorage(dsn, schema=schema, durability=durability)


async def main(
    mode: str, backend: str, target: str, marks_dir: str, run_id: str, durability: str
) -> None:
    marks = Path(marks_dir)
    store = open_storage(backend, target, durability)
    pm = get_plugin_manager(load_entrypoints=False)
    try:
        stored = await store.load_run(run_id)
        kind = stored.workflow_id if stored is not None else mode
        wf = approval(marks) if kind in ("suspend", "approval") else five_steps(marks)
        if mode == "run":
            run = await wf.create_run(run_id, plugin_manager=pm, storage=store)
            async for event in run.stream(input_data={"n": 0}):
                print(json.dumps({"seq": event.seq, "wire": event.to_wire()}), flush=True)
        elif mode == "suspend":
            run = await wf.create_run(run_id, plugin_manager=pm, storage=store)
            print((await run.start({})).status, flush=True)
        elif mode == "resume":
            run = await wf.load_run(run_id, storage=store, plugin_manager=pm)
            print("ready", flush=True)
            sys.stdin.readline()
            try:
                result = await (run.resume(resume_data={"by": "me"}) if run.status == "suspended"
                                else run.resume())  # fmt: skip
            except (RunClaimedError, RunStateError):
                print("claimed", flush=True)
            else:
                print("won", result.status, flush=True)
        else:
            print("ready", flush=True)
            sys.stdin.readline()
            taken = await recover_interrupted([wf], store, plugin_manager=pm)
            if taken:
                result = await taken[0].wait()
                print("won", result.status, flush=True)
            else:
                print("none", flush=True)
    finally:
        await store.close()


if __name__ == "__main__":
    mode, backend, target, marks, run_id, *rest = sys.argv[1:]
    asyncio.run(main(mode, backend, target, marks, run_id, rest[0] if rest else "sync"))
