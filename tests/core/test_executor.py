"""The executor seam: where a step's function runs, chosen through ``make_step_executor``."""

from __future__ import annotations

import asyncio
import pickle
import threading
from typing import Any

import pytest

from stepstream import (
    LocalExecutor,
    ModelError,
    Step,
    StepContext,
    StepExecutionError,
    StepExecutor,
    Workflow,
    get_plugin_manager,
    hookimpl,
    step,
)
from stepstream.testing import Recorder

from ..conftest import assert_no_tasks_left


class ThreadExecutor:
    """Runs every attempt in a thread of its own, with its own event loop; records its calls
    and relays the step's writes the way a remote executor would."""

    name = "thread"

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []
        self.attempts: list[str] = []
        self.threads: set[int] = set()

    @hookimpl
    def make_step_executor(self, step: Step[Any, Any], workflow_id: str) -> Any:
        self.asked.append((step.id, workflow_id))
        return self if step.executor in (None, self.name) else None

    async def execute(self, step: Step[Any, Any], ctx: StepContext[Any]) -> Any:
        self.attempts.append(step.id)
        return await asyncio.to_thread(self._in_thread, step, ctx)

    def _in_thread(self, step: Step[Any, Any], ctx: StepContext[Any]) -> Any:
        self.threads.add(threading.get_ident())
        return step.call_sync(ctx) if not step.is_async else asyncio.run(step.run(ctx))


@step(id="where")
def where(ctx: StepContext[Any]) -> dict[str, Any]:
    return {"thread": threading.get_ident()}


@step(id="pinned", executor="local")
async def pinned(ctx: StepContext[Any]) -> dict[str, Any]:
    return {"thread": threading.get_ident()}


async def _run(wf: Workflow, *plugins: object, input_data: Any = None) -> Any:
    pm = get_plugin_manager(load_entrypoints=False, plugins=list(plugins))
    run = await wf.create_run(plugin_manager=pm)
    return await run.start(input_data if input_data is not None else {})


@pytest.mark.asyncio
async def test_hook_make_step_executor() -> None:
    """Asked once per step and run (retries and foreach items reuse the answer), with the
    step's own workflow id; steps pinned to ``local`` are never asked."""
    tries = {"n": 0}

    @step(id="flaky", retries=2, retry_delay=0)
    def flaky(ctx: StepContext[Any]) -> dict[str, int]:
        tries["n"] += 1
        if tries["n"] < 3:
            raise RuntimeError("again")
        return {"tries": tries["n"]}

    @step(id="item")
    def item(ctx: StepContext[int]) -> int:
        return ctx.input_data * 10

    inner = Workflow(id="inner").then(where).commit()
    wf = (
        Workflow(id="outer")
        .then(flaky)
        .then(pinned)
        .then(inner)
        .map(lambda ctx: [1, 2, 3])
        .foreach(item, concurrency=2)
        .commit()
    )
    executor = ThreadExecutor()
    result = await _run(wf, executor)

    assert result.status == "success", result.error
    assert result.result == [10, 20, 30]
    asked = [a for a in executor.asked if not a[0].startswith("mapping_")]
    assert asked == [("flaky", "outer"), ("where", "inner"), ("item", "outer")]
    assert executor.attempts.count("flaky") == 3  # every retry went through the executor
    assert executor.attempts.count("item") == 3
    assert "pinned" not in executor.attempts
    assert result.steps["pinned"].output["thread"] == threading.get_ident()
    assert result.steps["inner"].output["thread"] in executor.threads
    await assert_no_tasks_left()


@pytest.mark.asyncio
async def test_without_an_answer_steps_run_locally() -> None:
    class Declines:
        @hookimpl
        def make_step_executor(self, step: Step[Any, Any]) -> None:
            return None

    result = await _run(Workflow(id="wf").then(pinned).then(where).commit(), Declines())
    assert result.status == "success"
    assert result.steps["where"].output["thread"] != threading.get_ident()  # sync: a thread


@pytest.mark.asyncio
async def test_a_step_asking_for_a_missing_executor_fails_clearly(recorder: Recorder) -> None:
    gpu = Step(id="gpu", execute=where._execute, executor="gpu")
    result = await _run(Workflow(id="wf").then(gpu).commit(), recorder)
    assert result.status == "failed"
    assert result.steps["gpu"].error == (
        "StepExecutionError: step 'gpu' asks for the 'gpu' executor, but the run's plugins "
        "provide none"
    )
    assert recorder.types() == [
        "start",
        "step-start",
        "step-result",
        "step-finish",
        "finish",
    ]


@pytest.mark.asyncio
async def test_an_executor_of_another_name_is_refused() -> None:
    class Wrong(ThreadExecutor):
        name = "other"

        @hookimpl
        def make_step_executor(self, step: Step[Any, Any], workflow_id: str) -> Any:
            return self

    gpu = Step(id="gpu", execute=where._execute, executor="gpu")
    executor = Wrong()
    result = await _run(Workflow(id="wf").then(gpu).commit(), executor)
    assert result.steps["gpu"].error == (
        "StepExecutionError: step 'gpu' asks for the 'gpu' executor, but the run's plugins "
        "provide 'other'"
    )
    assert executor.attempts == []


@pytest.mark.asyncio
async def test_a_raising_decision_hook_fails_the_step_not_the_engine() -> None:
    class Broken:
        @hookimpl
        def make_step_executor(self, step: Step[Any, Any]) -> Any:
            raise LookupError("no cluster")

    result = await _run(Workflow(id="wf").then(where).commit(), Broken())
    assert result.status == "failed"
    assert result.steps["where"].error == "LookupError: no cluster"
    await assert_no_tasks_left()


@pytest.mark.asyncio
async def test_an_executor_relays_events_in_order_and_its_errors_fail_the_step(
    recorder: Recorder,
) -> None:
    @step(id="chatty")
    async def chatty(ctx: StepContext[Any]) -> None:
        for i in range(5):
            await ctx.write({"i": i})
        raise ValueError("after five")

    result = await _run(Workflow(id="wf").then(chatty).commit(), ThreadRelay(), recorder)
    assert result.steps["chatty"].error == "ValueError: after five"
    outputs = [e.output["i"] for e in recorder.events if e.type == "step-output"]
    assert outputs == [0, 1, 2, 3, 4]
    assert [e.seq for e in recorder.events] == list(range(len(recorder.events)))


class ThreadRelay:
    """An executor whose step runs on another thread and whose writes hop back to the run's
    loop, as a remote executor's events do."""

    name = "relay"

    @hookimpl
    def make_step_executor(self, step: Step[Any, Any]) -> Any:
        return self

    async def execute(self, step: Step[Any, Any], ctx: StepContext[Any]) -> Any:
        loop = asyncio.get_running_loop()

        class Relay:
            def __getattr__(self, name: str) -> Any:
                return getattr(ctx, name)

            async def write(self, data: Any) -> None:
                await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(ctx.write(data), loop))

        return await asyncio.to_thread(asyncio.run, step.run(Relay()))  # type: ignore[arg-type]


def test_the_local_executor_is_a_step_executor() -> None:
    assert isinstance(LocalExecutor(), StepExecutor)
    assert isinstance(ThreadExecutor(), StepExecutor)


def test_errors_pickle_with_their_attributes() -> None:
    """Errors travel between processes (a remote step's error comes back to the run)."""
    error = StepExecutionError("boom", run_id="r1", step_id="s1")
    back = pickle.loads(pickle.dumps(error))
    assert (type(back), str(back), back.run_id, back.step_id) == (
        StepExecutionError,
        "boom",
        "r1",
        "s1",
    )
    model = pickle.loads(pickle.dumps(ModelError("down", status_code=503, attempts=4)))
    assert (model.status_code, model.attempts, str(model)) == (503, 4, "down")


@pytest.mark.asyncio
async def test_get_step_results_gives_every_successful_output_so_far() -> None:
    @step(id="first")
    async def first(ctx: StepContext[Any]) -> dict[str, int]:
        return {"a": 1}

    @step(id="second")
    async def second(ctx: StepContext[Any]) -> dict[str, Any]:
        return {"seen": ctx.get_step_results()}

    result = await _run(Workflow(id="wf").then(first).then(second).commit())
    assert result.result == {"seen": {"first": {"a": 1}}}
