"""Decision hooks go through one route: the run's own plugins first, then the engine's."""

from __future__ import annotations

from typing import Any

import pytest

from stepstream import PluginManager, StepContext, Workflow, get_plugin_manager, hookimpl, step
from stepstream.events import Event
from stepstream.executor import run_locally
from stepstream.plugins.stream import StreamPlugin


@step(id="which")
async def which(ctx: StepContext[Any]) -> Any:
    adapter = ctx.plugin_manager.hook.make_stream_adapter(provider="openai", model="m")
    return {"adapter": type(adapter).__name__, "where": ctx.input_data}


class _OwnAdapter:
    """An adapter of the run's own (its behaviour does not matter here)."""


class _AdapterPlugin:
    @hookimpl
    def make_stream_adapter(self, provider: str, model: str) -> Any:
        return _OwnAdapter()


class _Tagging:
    """An executor of the run's own: runs the step here and says so in its output."""

    name = "tagging"

    async def execute(self, step: Any, ctx: StepContext[Any]) -> Any:
        output = await run_locally(step, ctx)
        return {**output, "executor": self.name}


class _ExecutorPlugin:
    @hookimpl
    def make_step_executor(self, step: Any, workflow_id: str) -> Any:
        return _Tagging()


class _StreamProvider:
    def __init__(self) -> None:
        self.inner = StreamPlugin()
        self.opened: list[str] = []

    @hookimpl
    def open_event_stream(self, run_id: str, buffer_size: int) -> Any:
        self.opened.append(run_id)
        return self.inner.open_event_stream(run_id, buffer_size)

    @hookimpl
    def on_event(self, event: Event) -> Any:
        return self.inner.on_event(event)


@pytest.fixture
def engine() -> PluginManager:
    return get_plugin_manager(load_entrypoints=False)


@pytest.mark.asyncio
async def test_a_run_plugin_chooses_the_stream_adapter(engine: PluginManager) -> None:
    wf = Workflow(id="wf").then(which).commit()
    own = await wf.create_run(plugin_manager=engine, plugins=[_AdapterPlugin()])
    assert (await own.start("run")).result == {"adapter": "_OwnAdapter", "where": "run"}
    # Without a run plugin answering, the engine's (the built-in OpenAI adapter) answers.
    other = await wf.create_run(plugin_manager=engine, plugins=[_ExecutorPlugin()])
    assert (await other.start("engine")).result["adapter"] == "OpenAIStreamAdapter"
    plain = await wf.create_run(plugin_manager=engine)
    assert (await plain.start("engine")).result["adapter"] == "OpenAIStreamAdapter"


@pytest.mark.asyncio
async def test_a_run_plugin_chooses_the_step_executor(engine: PluginManager) -> None:
    wf = Workflow(id="wf").then(which).commit()
    own = await wf.create_run(plugin_manager=engine, plugins=[_ExecutorPlugin()])
    assert (await own.start("x")).result["executor"] == "tagging"
    plain = await wf.create_run(plugin_manager=engine)
    assert "executor" not in (await plain.start("x")).result


@pytest.mark.asyncio
async def test_a_run_plugin_chooses_the_event_stream(engine: PluginManager) -> None:
    provider = _StreamProvider()
    wf = Workflow(id="wf").then(which).commit()
    run = await wf.create_run(plugin_manager=engine, plugins=[provider])
    stream = run.stream("x")
    assert stream.channel is not None and provider.opened == [run.run_id]
    types = [e.type async for e in stream]
    assert types == ["start", "step-start", "step-result", "step-finish", "finish"]
    engine_stream = engine.get_plugin("stream")
    assert isinstance(engine_stream, StreamPlugin)
    assert engine_stream.open_channels == 0  # the engine's plugin was not asked


@pytest.mark.asyncio
async def test_the_run_manager_does_not_count_the_engines_answers_as_its_own(
    engine: PluginManager,
) -> None:
    wf = Workflow(id="wf").then(which).commit()
    run = await wf.create_run(plugin_manager=engine, plugins=[_AdapterPlugin()])
    local = run._dispatcher.local
    assert local is not None
    assert "make_stream_adapter" in local.implemented
    assert "make_step_executor" not in local.implemented  # only forwarded to the engine
    assert not run._dispatcher.decides("make_step_executor")  # the fast path stays
