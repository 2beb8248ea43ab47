"""Steps the Ray tests send to workers (module level, so workers import them by name)."""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

import ray
from pydantic import BaseModel

from stepstream import StepContext, step


class Count(BaseModel):
    n: int


class Tagged(BaseModel):
    n: int
    pid: int


@ray.remote
class Signal:
    """Set by a remote step when it is canceled; the test awaits it (no polling)."""

    def __init__(self) -> None:
        self.fired = asyncio.Event()
        self.how = ""

    async def fire(self, how: str) -> None:
        self.how = how
        self.fired.set()

    async def wait(self) -> str:
        await self.fired.wait()
        return self.how


@step(id="add-one", executor="ray")
async def add_one(ctx: StepContext[Count]) -> Tagged:
    return Tagged(n=ctx.input_data.n + 1, pid=os.getpid())


@step(id="double", executor="ray")
def double(ctx: StepContext[Tagged]) -> Tagged:  # sync: runs in the worker too
    return Tagged(n=ctx.input_data.n * 2, pid=os.getpid())


@step(id="local-tail")
async def local_tail(ctx: StepContext[Tagged]) -> Tagged:
    return Tagged(n=ctx.input_data.n, pid=os.getpid())


@step(id="report", executor="ray")
async def report(ctx: StepContext[Any]) -> dict[str, Any]:
    """What a remote step sees of its run."""
    return {
        "earlier": ctx.get_step_result("add-one").model_dump(),
        "init": ctx.get_init_data().model_dump(),
        "user": ctx.runtime_context.get("user"),
        "run_id": ctx.run_id,
        "step_id": ctx.step_id,
    }


def writer(name: str, count: int) -> Any:
    @step(id=name, executor="ray")
    async def write_many(ctx: StepContext[Any]) -> dict[str, Any]:
        for i in range(count):
            await ctx.write({"step": name, "i": i})
        return {"step": name, "pid": os.getpid()}

    return write_many


@step(id="explode", executor="ray")
async def explode(ctx: StepContext[Any]) -> None:
    await ctx.write({"before": "boom"})
    raise ValueError("boom from the worker")


class NeedsKeywords(Exception):
    """An exception that pickles but cannot be rebuilt (keyword-only constructor)."""

    def __init__(self, *, why: str) -> None:
        super().__init__(why)


@step(id="odd-error", executor="ray")
async def odd_error(ctx: StepContext[Any]) -> None:
    raise NeedsKeywords(why="odd")


@step(id="lock-output", executor="ray")
async def lock_output(ctx: StepContext[Any]) -> Any:
    return threading.Lock()


async def wait_to_be_canceled(signal: Any) -> None:
    """Wait until the step is canceled on the worker, then tell ``signal`` so."""
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        await signal.fire.remote("canceled")
        raise


def hanging(signal: Any, *, timeout: float | None = None) -> Any:
    @step(id="hang", executor="ray", timeout=timeout)
    async def hang(ctx: StepContext[Any]) -> None:
        await ctx.write({"hanging": os.getpid()})
        await wait_to_be_canceled(signal)

    return hang


class Approval(BaseModel):
    ok: bool


@step(id="approve", executor="ray", resume_schema=Approval)
async def approve(ctx: StepContext[Any]) -> dict[str, Any]:
    if ctx.resume_data is None:
        ctx.suspend({"asked": os.getpid()})
    return {"approved": ctx.resume_data.ok, "suspended_with": ctx.suspend_payload}


def flaky(marker: str) -> Any:
    """Fails on its first attempt (a file on the shared disk remembers it), then succeeds."""

    @step(id="flaky", executor="ray", retries=2, retry_delay=0)
    def flaky_step(ctx: StepContext[Any]) -> dict[str, int]:
        if not os.path.exists(marker):
            with open(marker, "w") as f:
                f.write(str(os.getpid()))
            raise RuntimeError("first attempt fails")
        return {"pid": os.getpid()}

    return flaky_step


@step(id="self-cancel", executor="ray")
async def self_cancel(ctx: StepContext[Any]) -> None:
    raise asyncio.CancelledError  # the step's own doing, not its run's


@step(id="exits", executor="ray")
def exits(ctx: StepContext[Any]) -> None:
    raise SystemExit(3)


@step(id="bad-write", executor="ray")
async def bad_write(ctx: StepContext[Any]) -> None:
    await ctx.write({"ok": 1})
    await ctx.write({"lock": threading.Lock()})


def unloadable_write(signal: Any) -> Any:
    """Writes data that pickles on the worker but cannot be loaded by the driver, then waits
    (as if more were to come) until its task is canceled."""

    @step(id="unloadable", executor="ray")
    async def unloadable(ctx: StepContext[Any]) -> None:
        await ctx.write({"error": NeedsKeywords(why="odd")})
        await wait_to_be_canceled(signal)

    return unloadable


@step(id="open-client")
async def open_client(ctx: StepContext[Any]) -> dict[str, Any]:
    return {"client": threading.Lock()}  # for local steps only


@step(id="remote-ignores", executor="ray")
async def remote_ignores(ctx: StepContext[Any]) -> dict[str, int]:
    return {"pid": os.getpid()}


@step(id="remote-asks", executor="ray")
async def remote_asks(ctx: StepContext[Any]) -> Any:
    return ctx.get_step_result("open-client")
