"""Each hook's contract, one test per hook (``test_hook_<name>``), and the meta test."""

from __future__ import annotations

import contextlib
import contextvars
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stepstream import (
    Event,
    PluginManager,
    StepContext,
    Workflow,
    get_plugin_manager,
    hookimpl,
    hookspecs,
    step,
)
from stepstream.storage.sqlite import SQLiteStorage
from stepstream.testing import Recorder

SPECS = sorted(
    name
    for name, fn in vars(hookspecs).items()
    if inspect.isfunction(fn) and hasattr(fn, "stepstream_spec")
)


def test_every_hookspec_is_documented() -> None:
    assert SPECS, "no hookspecs found"
    for name in SPECS:
        fn = getattr(hookspecs, name)
        doc = inspect.getdoc(fn) or ""
        assert doc.split("\n")[0].endswith("."), f"{name}: first line must be a sentence"
        for arg in inspect.signature(fn).parameters:
            assert f":param {arg}:" in doc, f"{name}: argument {arg!r} undocumented"
        assert ("Observer hook" in doc) or ("Decision hook" in doc) or ("only logged" in doc), (
            f"{name}: must say what a raise does"
        )
        if inspect.signature(fn).return_annotation not in ("None", None):
            assert ":return:" in doc, f"{name}: return value undocumented"


def test_every_hookspec_has_a_test_of_its_own() -> None:
    """datasette's rule: each hook has a test named ``test_hook_<name>`` somewhere in tests/."""
    tests_dir = Path(__file__).resolve().parents[1]
    source = "\n".join(p.read_text() for p in tests_dir.rglob("test_*.py"))
    missing = [name for name in SPECS if f"def test_hook_{name}(" not in source]
    assert missing == []


@step(id="ok")
async def ok(ctx: StepContext[Any]) -> Any:
    return {"seen": VAR.get()}


@step(id="bad")
async def bad(ctx: StepContext[Any]) -> Any:
    raise LookupError("nothing here")


VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


class Order:
    """Puts every hook call and event into one list, to check their interleaving."""

    def __init__(self) -> None:
        self.log: list[str] = []

    @hookimpl
    def on_event(self, event: Event) -> None:
        sid = getattr(event, "step_id", None)
        self.log.append(f"event:{event.type}" + (f":{sid}" if sid else ""))

    @hookimpl
    def before_workflow_run(self, workflow_id: str) -> None:
        self.log.append(f"before_workflow_run:{workflow_id}")

    @hookimpl
    def after_workflow_run(self, result: Any) -> None:
        self.log.append(f"after_workflow_run:{result.status}")

    @hookimpl
    def before_step_run(self, step_id: str, input_data: Any) -> None:
        self.log.append(f"before_step_run:{step_id}:{input_data}")

    @hookimpl
    def after_step_run(self, step_id: str, status: str, output: Any) -> None:
        self.log.append(f"after_step_run:{step_id}:{status}:{output}")


async def _run(wf: Workflow, *plugins: object, input_data: Any = None) -> Any:
    pm = get_plugin_manager(load_entrypoints=False, plugins=list(plugins))
    run = await wf.create_run(plugin_manager=pm)
    return await run.start(input_data if input_data is not None else {"a": 1})


@pytest.mark.asyncio
async def test_hook_on_event(pm: PluginManager, recorder: Recorder) -> None:
    """Called for every event, in order, before the stream's consumer can see it."""
    consumed: list[Event] = []
    visible_at_dispatch: list[int] = []

    class Check:
        @hookimpl
        def on_event(self, event: Event) -> None:
            visible_at_dispatch.append(len(consumed))

    pm.register(Check())
    run = await Workflow(id="wf").then(ok).commit().create_run(plugin_manager=pm)
    async for event in run.stream(input_data={}):
        consumed.append(event)
    assert recorder.events == consumed
    assert all(seen <= i for i, seen in enumerate(visible_at_dispatch))


@pytest.mark.asyncio
async def test_hook_before_workflow_run(tmp_path: Path) -> None:
    order = Order()
    await _run(Workflow(id="wf").then(ok).commit(), order)
    assert order.log[0] == "before_workflow_run:wf"
    assert order.log[1] == "event:start"

    # ``meta`` is the run's own, stored with it and given back on resume in another process.
    class Counter:
        def __init__(self) -> None:
            self.seen: list[dict[str, Any]] = []

        @hookimpl
        def before_workflow_run(self, meta: dict[str, Any]) -> None:
            self.seen.append(dict(meta))
            meta["counter"] = {"executions": meta.get("counter", {}).get("executions", 0) + 1}

    @step(id="gate")
    async def gate(ctx: StepContext[Any]) -> Any:
        if ctx.resume_data is None:
            ctx.suspend({})
        return {}

    def workflow() -> Workflow:
        return Workflow(id="wf", storage=SQLiteStorage(tmp_path / "runs.db")).then(gate).commit()

    first, counter = workflow(), Counter()
    pm = get_plugin_manager(load_entrypoints=False, plugins=[("counter", counter)])
    run = await first.create_run(plugin_manager=pm)
    assert (await run.start({})).status == "suspended"
    await first.storage.close()  # type: ignore[union-attr]
    again, later = workflow(), Counter()
    pm = get_plugin_manager(load_entrypoints=False, plugins=[("counter", later)])
    loaded = await again.load_run(run.run_id, plugin_manager=pm)
    assert (await loaded.resume(resume_data={})).status == "success"
    await again.storage.close()  # type: ignore[union-attr]
    assert counter.seen == [{}]
    assert later.seen == [{"counter": {"executions": 1}}]


@pytest.mark.asyncio
async def test_hook_after_workflow_run() -> None:
    order = Order()
    await _run(Workflow(id="wf").then(bad).commit(), order)
    assert order.log[-2:] == ["after_workflow_run:failed", "event:finish"]


@pytest.mark.asyncio
async def test_hook_before_step_run() -> None:
    order = Order()
    await _run(Workflow(id="wf").then(ok).commit(), order, input_data={"a": 1})
    i = order.log.index("event:step-start:ok")
    assert order.log[i + 1] == "before_step_run:ok:{'a': 1}"


@pytest.mark.asyncio
async def test_hook_after_step_run() -> None:
    order = Order()
    await _run(Workflow(id="wf").then(ok).then(bad).commit(), order)
    assert "after_step_run:ok:success:{'seen': 'unset'}" in order.log
    i = order.log.index("after_step_run:bad:failed:None")
    assert order.log[i + 1] == "event:step-result:bad"


@pytest.mark.asyncio
async def test_hook_on_step_error(recorder: Recorder) -> None:
    result = await _run(Workflow(id="wf").then(bad).commit(), recorder)
    [(_, call)] = [c for c in recorder.calls if c[0] == "on_step_error"]
    assert call["step_id"] == "bad"
    assert isinstance(call["error"], LookupError) and str(call["error"]) == "nothing here"
    assert result.error == "LookupError: nothing here"


@pytest.mark.asyncio
async def test_hook_wrap_step_run() -> None:
    log: list[str] = []

    class Span:
        @hookimpl
        def wrap_step_run(self, step_id: str) -> contextlib.AbstractContextManager[None]:
            @contextlib.contextmanager
            def span() -> Iterator[None]:
                token = VAR.set(f"span:{step_id}")
                log.append(f"enter:{step_id}")
                try:
                    yield
                except Exception as exc:
                    log.append(f"error:{step_id}:{type(exc).__name__}")
                    raise
                finally:
                    VAR.reset(token)
                    log.append(f"exit:{step_id}")

            return span()

    result = await _run(Workflow(id="wf").then(ok).then(bad).commit(), Span())
    assert result.steps["ok"].output == {"seen": "span:ok"}  # the step ran inside the span
    assert log == ["enter:ok", "exit:ok", "enter:bad", "error:bad:LookupError", "exit:bad"]


@pytest.mark.asyncio
async def test_hook_on_plugin_error() -> None:
    reported: list[tuple[str, str, str]] = []

    class Faulty:
        @hookimpl
        def before_step_run(self) -> None:
            raise ZeroDivisionError("oops")

    class Reporter:
        @hookimpl
        def on_plugin_error(self, plugin_name: str, hook_name: str, error: BaseException) -> None:
            reported.append((plugin_name, hook_name, repr(error)))

    pm = get_plugin_manager(
        load_entrypoints=False, plugins=[("faulty", Faulty()), ("reporter", Reporter())]
    )
    run = await Workflow(id="wf").then(ok).commit().create_run(plugin_manager=pm)
    result = await run.start({})
    assert result.status == "success"
    assert reported == [("faulty", "before_step_run", "ZeroDivisionError('oops')")]
    assert [(e.plugin, e.hook) for e in result.plugin_errors] == [("faulty", "before_step_run")]


@pytest.mark.asyncio
async def test_hook_open_event_stream() -> None:
    """firstresult: a plugin answering None lets the next one (the built-in) answer."""
    asked: list[tuple[str, int]] = []

    class Declines:
        @hookimpl
        def open_event_stream(self, run_id: str, buffer_size: int) -> None:
            asked.append((run_id, buffer_size))

    pm = get_plugin_manager(load_entrypoints=False, plugins=[Declines()])
    run = await Workflow(id="wf").then(ok).commit().create_run(plugin_manager=pm)
    stream = run.stream(input_data={}, buffer_size=7)
    assert [e.type async for e in stream][-1] == "finish"
    assert asked == [(run.run_id, 7)]
