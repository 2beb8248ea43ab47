"""Workflows the Studio's browser tests serve beside the weather example (module-level, as
``stepstream serve`` wants them)."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel

from stepstream import StepContext, Workflow, step

from ..conformance import workflows as cases

approvalWf = cases.i_suspend_resume()
parallelWf = cases.c_parallel()
branchWf = cases.d_branch()
nestedWf = cases.h_nested()
foreachWf = cases.g_foreach()
loopWf = cases.f_dountil()


class Job(BaseModel):
    name: str


@step(id="work")
async def work(ctx: StepContext[Job]) -> Job:
    # Works until canceled: the run stays running for the test to cancel it.
    await asyncio.Event().wait()
    return ctx.input_data


slowWf = Workflow(id="slow-wf", input_schema=Job).then(work).commit()


@step(id="prepare")
async def prepare(ctx: StepContext[Job]) -> Job:
    return ctx.input_data


@step(id="ship")
async def ship(ctx: StepContext[Job]) -> dict[str, object]:
    return {"name": ctx.input_data.name, "event": ctx.resume_data}


eventWf = (
    Workflow(id="event-wf", input_schema=Job)
    .then(prepare)
    .wait_for_event("approved", ship)
    .commit()
)
