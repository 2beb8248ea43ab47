"""A workflow that suspends twice, served by the cluster's resumption tests: ``twice`` runs
``ask-1`` then ``ask-2``, each suspending until resumed with a value, which it returns. Each
step marks ``<run id> <step id> <pid>`` in ``$SAMPLE_MARKS/done.txt`` when its body ends."""

from __future__ import annotations

from typing import Any

from stepstream import StepContext, Workflow, step

from .workflows import mark


@step(id="ask-1")
async def ask_1(ctx: StepContext[Any]) -> Any:
    if ctx.resume_data is None:
        ctx.suspend({"ask": 1})
    mark(ctx.run_id, "ask-1")
    return ctx.resume_data


@step(id="ask-2")
async def ask_2(ctx: StepContext[Any]) -> Any:
    if ctx.resume_data is None:
        ctx.suspend({"ask": 2})
    mark(ctx.run_id, "ask-2")
    return ctx.resume_data


twice = Workflow(id="twice").then(ask_1).then(ask_2).commit()
