"""Workflows that the cluster tests serve from several ``stepstream serve`` processes.

``gated`` runs ``first``, then ``gate`` (which waits until the file ``$SAMPLE_MARKS/go-<run
id>`` exists), then ``last``; ``evented`` runs ``first`` and ``gate`` too, then waits for the
event ``go``; ``approval`` suspends at ``approve`` until resumed with ``{"by": ...}``. Every step
appends ``<run id> <step id> <pid>`` to ``$SAMPLE_MARKS/done.txt`` when its body ends.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from stepstream import StepContext, Workflow, step

MARKS = Path(os.environ.get("SAMPLE_MARKS", "."))


def mark(run_id: str, step_id: str) -> None:
    with (MARKS / "done.txt").open("a") as done:  # one short append per line: not interleaved
        done.write(f"{run_id} {step_id} {os.getpid()}\n")


@step(id="first")
async def first(ctx: StepContext[Any]) -> Any:
    mark(ctx.run_id, "first")
    return {"n": 1}


@step(id="gate")
async def gate(ctx: StepContext[Any]) -> Any:
    flag = MARKS / f"go-{ctx.run_id}"
    while not await asyncio.to_thread(flag.exists):  # noqa: ASYNC110 (another process opens it)
        await asyncio.sleep(0.01)
    mark(ctx.run_id, "gate")
    return {"n": 2}


@step(id="last")
async def last(ctx: StepContext[Any]) -> Any:
    mark(ctx.run_id, "last")
    return {"n": 3}


@step(id="on-go")
async def on_go(ctx: StepContext[Any]) -> Any:
    mark(ctx.run_id, "on-go")
    return {"got": ctx.resume_data}


@step(id="approve")
async def approve(ctx: StepContext[Any]) -> Any:
    if ctx.resume_data is None:
        ctx.suspend({"ask": "ok?"})
    mark(ctx.run_id, "approve")
    return {"by": ctx.resume_data["by"]}


gated = Workflow(id="gated").then(first).then(gate).then(last).commit()
evented = Workflow(id="evented").then(first).then(gate).wait_for_event("go", on_go).commit()
approval = Workflow(id="approval").then(approve).commit()
