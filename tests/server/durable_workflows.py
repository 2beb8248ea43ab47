"""Workflows that the multi-process server tests serve (``stepstream serve`` of this module).

``approval`` suspends at ``approve`` until resumed with ``{"by": ...}``; ``five`` has five
steps, the third of which (``hold``) waits until the file ``$SAMPLE_MARKS/go`` exists. Every
step appends its id to ``$SAMPLE_MARKS/done.txt`` (with the process id) when its body ends.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from stepstream import StepContext, Workflow, step

MARKS = Path(os.environ.get("SAMPLE_MARKS", "."))


def mark(step_id: str) -> None:
    with (MARKS / "done.txt").open("a") as done:
        done.write(f"{step_id} {os.getpid()}\n")


@step(id="approve")
async def approve(ctx: StepContext[Any]) -> Any:
    if ctx.resume_data is None:
        ctx.suspend({"ask": "ok?"})
    mark("approve")
    return {"by": ctx.resume_data["by"]}


def counted(step_id: str) -> Any:
    @step(id=step_id)
    async def body(ctx: StepContext[Any]) -> Any:
        mark(step_id)
        return {"n": ctx.input_data["n"] + 1}

    return body


@step(id="hold")
async def hold(ctx: StepContext[Any]) -> Any:
    flag = MARKS / "go"
    while not await asyncio.to_thread(flag.exists):  # noqa: ASYNC110 (the test kills us here)
        await asyncio.sleep(0.01)
    mark("hold")
    return {"n": ctx.input_data["n"] + 1}


approval = Workflow(id="approval").then(approve).commit()
five = (
    Workflow(id="five")
    .then(counted("s1"))
    .then(counted("s2"))
    .then(hold)
    .then(counted("s4"))
    .then(counted("s5"))
    .commit()
)
