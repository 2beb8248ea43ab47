"""Workflows the command-line tests run: ``stepstream run tests.cli.sample_workflows:NAME``.

``two_steps`` adds one then doubles; ``failing`` raises in its second step; ``approval``
suspends until resumed with ``{"approved": ...}``; ``waits_for_file`` finishes its first
step, then blocks in the second until the file named in its input exists. The agent workflow
is in ``agent_workflow`` (it imports the model client, which takes a while). ``chatty``
writes ``n`` step-output events (enough to fill a pipe); ``mapped`` has ``.map()`` steps;
``stored_approval`` is ``approval`` with a storage of its own, the SQLite file named by the
``SAMPLE_DB`` environment variable; ``held`` blocks (asynchronously) in its second step
until the file named in its input exists, for the tests that stop the CLI mid-run.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from pydantic import BaseModel

from stepstream import StepContext, Workflow, step
from stepstream.storage.sqlite import SQLiteStorage


class Number(BaseModel):
    n: int


class Item(BaseModel):
    item: str


class Approval(BaseModel):
    approved: bool


class Waiting(BaseModel):
    path: str


@step(id="add-one")
async def add_one(ctx: StepContext[Number]) -> Number:
    return Number(n=ctx.input_data.n + 1)


@step(id="double")
def double(ctx: StepContext[Number]) -> Number:
    return Number(n=ctx.input_data.n * 2)


@step(id="explode")
async def explode(ctx: StepContext[Number]) -> Number:
    raise ValueError(f"boom at {ctx.input_data.n}")


@step(id="prepare")
async def prepare(ctx: StepContext[Item]) -> Item:
    await ctx.write({"prepared": ctx.input_data.item})
    return ctx.input_data


@step(id="approve")
async def approve(ctx: StepContext[Item]) -> Approval:
    if ctx.resume_data is None:
        ctx.suspend({"question": f"approve {ctx.input_data.item}?"})
    return Approval(approved=bool(ctx.resume_data["approved"]))


@step(id="first")
async def first(ctx: StepContext[Waiting]) -> Waiting:
    return ctx.input_data


@step(id="second")
def second(ctx: StepContext[Waiting]) -> Waiting:
    # The test creates the file once it has seen this run's first step on the CLI's output.
    while not Path(ctx.input_data.path).exists():
        time.sleep(0.01)
    return ctx.input_data


@step(id="hold")
async def hold(ctx: StepContext[Waiting]) -> Waiting:
    flag = Path(ctx.input_data.path)
    while not await asyncio.to_thread(flag.exists):  # noqa: ASYNC110 (the test stops us here)
        await asyncio.sleep(0.01)
    return ctx.input_data


@step(id="talk")
async def talk(ctx: StepContext[Number]) -> Number:
    for i in range(ctx.input_data.n):
        await ctx.write({"line": i, "padding": "x" * 80})
    return ctx.input_data


two_steps = Workflow(id="two-steps", input_schema=Number).then(add_one).then(double).commit()
failing = Workflow(id="failing", input_schema=Number).then(add_one).then(explode).commit()
approval = Workflow(id="approval", input_schema=Item).then(prepare).then(approve).commit()
waits_for_file = Workflow(id="waits", input_schema=Waiting).then(first).then(second).commit()

not_committed = Workflow(id="draft").then(add_one)
not_a_workflow = 42
chatty = Workflow(id="chatty", input_schema=Number).then(talk).commit()
mapped = (
    Workflow(id="mapped", input_schema=Number)
    .then(add_one)
    .map(lambda ctx: {"n": ctx.input_data.n * 10})
    .then(double)
    .map(lambda ctx: {"n": ctx.input_data.n - 1})
    .commit()
)
stored_approval = (
    Workflow(
        id="approval",
        input_schema=Item,
        storage=SQLiteStorage(os.environ.get("SAMPLE_DB", ":memory:")),
    )
    .then(prepare)
    .then(approve)
    .commit()
)
event_wait = (
    Workflow(id="event-wait", input_schema=Number)
    .then(add_one)
    .wait_for_event("go", double)
    .commit()
)
held = Workflow(id="held", input_schema=Waiting).then(first).then(hold).then(second).commit()
