"""Token usage end to end: from what the local model server reports to the events, the step
records, the result, the live run, the stored run, the price table and the budget."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from stepstream import (
    Budget,
    PluginManager,
    PriceTable,
    StepContext,
    Usage,
    Workflow,
    step,
)
from stepstream.agents import Agent
from stepstream.storage.sqlite import SQLiteStorage
from stepstream.testing import ModelServer, ReplySequence, TextReply, ToolCallReply

from .test_agent import make_agent
from .test_tools import get_weather

TOOL_USAGE = {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25}
TEXT_USAGE: dict[str, Any] = {
    "prompt_tokens": 30,
    "completion_tokens": 2,
    "total_tokens": 32,
    "prompt_tokens_details": {"cached_tokens": 10},
    "completion_tokens_details": {"reasoning_tokens": 1},
}
PRICES = PriceTable({"mock-gpt": {"input": 1.0, "output": 10.0, "cached_input": 0.5}})


def tool_loop(server: ModelServer) -> None:
    server.responder = ReplySequence(
        [
            ToolCallReply("get_weather", ['{"city":', '"Oslo"}'], usage=TOOL_USAGE),
            TextReply(["Sun", "ny"], usage=cast(dict[str, int], TEXT_USAGE)),
        ]
    )


def weather_agent(server: ModelServer, name: str = "Weather Agent") -> Agent:
    agent = make_agent(server, tools=[get_weather])
    agent.name = name
    return agent


def cost(u: dict[str, Any]) -> float:
    cached = u.get("prompt_tokens_details", {}).get("cached_tokens", 0)
    return ((u["prompt_tokens"] - cached) * 1.0 + cached * 0.5 + u["completion_tokens"] * 10) / 1e6


@pytest.mark.asyncio
async def test_tool_loop_usage_is_summed_on_the_step_the_result_and_the_run(
    model_server: ModelServer, pm: PluginManager
) -> None:
    tool_loop(model_server)
    wf = Workflow(id="wf", prices=PRICES).then(step.from_agent(weather_agent(model_server)))
    run = await wf.commit().create_run(plugin_manager=pm)
    stream = run.stream(input_data={"prompt": "Oslo?"})
    live: list[dict[str, Any] | None] = []
    events = []
    async for event in stream:
        events.append(event)
        if event.type == "step-usage":
            live.append(run.usage)  # the live state already counts it
            assert stream.usage == run.usage  # Mastra's stream.usage
    result = await stream.get_workflow_state()

    usage_events = [e for e in events if e.type == "step-usage"]
    types = [e.type for e in events]
    # One per response: after the tool call of the first, after the last delta of the second.
    assert types[types.index("tool-call") + 1] == "step-usage"
    assert types[types.index("step-result") - 1] == "step-usage"
    assert [(e.input_tokens, e.output_tokens, e.total_tokens) for e in usage_events] == [
        (20, 5, 25),
        (30, 2, 32),
    ]
    second = usage_events[1]
    assert (second.cached_input_tokens, second.reasoning_tokens) == (10, 1)
    assert (second.model, second.response_model, second.provider) == (
        "mock-gpt",
        "mock-gpt",
        "openai",
    )
    assert (usage_events[0].finish_reason, second.finish_reason) == ("tool_calls", "stop")
    assert second.cost == pytest.approx(cost(TEXT_USAGE))
    assert all(e.started_at <= e.ended_at for e in usage_events)

    expected = Usage(50, 7, 57, cached_input_tokens=10, reasoning_tokens=1, requests=2)
    total_cost = cost(TOOL_USAGE) + cost(TEXT_USAGE)
    for seen in (result.usage, result.steps["Weather Agent"].usage, run.usage):
        got = Usage.from_json(seen)
        assert got == Usage(**{**expected.to_json(), "cost": got.cost})
        assert got.cost == pytest.approx(total_cost)
    assert Usage.from_json(live[0]).total_tokens == 25
    # The wire shapes of Mastra's records are untouched.
    assert "usage" not in result.to_wire()["steps"]["Weather Agent"]
    assert usage_events[0].to_wire()["payload"]["inputTokens"] == 20


def test_the_sync_stream_has_the_usage_too(model_server: ModelServer) -> None:
    tool_loop(model_server)
    wf = Workflow(id="wf").then(step.from_agent(weather_agent(model_server))).commit()
    run = wf.create_run_sync()
    with run.stream_sync(input_data={"prompt": "Oslo?"}) as stream:
        types = [event.type for event in stream]
        assert types.count("step-usage") == 2
        assert Usage.from_json(stream.usage).total_tokens == 57


@pytest.mark.asyncio
async def test_nested_workflows_and_resumes_keep_counting(
    model_server: ModelServer, pm: PluginManager
) -> None:
    model_server.responder = lambda body: TextReply(["ok"], usage=TOOL_USAGE)

    @step(id="approve")
    def approve(ctx: StepContext[Any]) -> dict[str, str]:
        if ctx.resume_data is None:
            ctx.suspend({"ask": "go on?"})
        return {"prompt": "again"}

    inner = (
        Workflow(id="inner")
        .then(step.from_agent(weather_agent(model_server, "A")))
        .map(lambda ctx: {"prompt": "more"})
        .then(step.from_agent(weather_agent(model_server, "B")))
        .commit()
    )
    wf = (
        Workflow(id="outer")
        .then(inner)
        .then(approve)
        .then(step.from_agent(weather_agent(model_server, "C")))
        .commit()
    )
    run = await wf.create_run(plugin_manager=pm)
    first = await run.start({"prompt": "hi"})
    assert first.status == "suspended"
    assert Usage.from_json(first.steps["inner"].usage).total_tokens == 50  # A + B
    assert Usage.from_json(first.usage).requests == 2
    assert first.steps["approve"].usage is None  # it used no model
    result = await run.resume(step="approve", resume_data={"ok": True})
    assert result.status == "success"
    assert Usage.from_json(result.steps["C"].usage).total_tokens == 25
    assert Usage.from_json(result.usage) == Usage(60, 15, 75, requests=3)


@pytest.mark.asyncio
async def test_the_stored_run_keeps_its_usage(
    model_server: ModelServer, pm: PluginManager, tmp_path: Path
) -> None:
    tool_loop(model_server)

    def workflow() -> Workflow:
        storage = SQLiteStorage(tmp_path / "runs.db")
        agent = weather_agent(model_server)
        return Workflow(id="wf", storage=storage).then(step.from_agent(agent)).commit()

    wf = workflow()
    run = await wf.create_run(plugin_manager=pm)
    result = await run.start({"prompt": "Oslo?"})
    await wf.storage.close()  # type: ignore[union-attr]
    again = workflow()
    loaded = await again.load_run(run.run_id)
    stored = loaded.result
    assert stored is not None
    assert stored.usage == result.usage and Usage.from_json(stored.usage).total_tokens == 57
    assert stored.steps["Weather Agent"].usage == result.steps["Weather Agent"].usage
    assert loaded.usage == result.usage
    history = await loaded.history()
    assert [e.total_tokens for e in history if e.type == "step-usage"] == [25, 32]
    await again.storage.close()  # type: ignore[union-attr]


@pytest.mark.asyncio
async def test_a_token_budget_fails_the_run_when_a_response_goes_over(
    model_server: ModelServer, pm: PluginManager
) -> None:
    tool_loop(model_server)
    agent = weather_agent(model_server)
    wf = Workflow(id="wf", budget=Budget(max_tokens=40)).then(step.from_agent(agent)).commit()
    run = await wf.create_run(plugin_manager=pm)
    stream = run.stream(input_data={"prompt": "Oslo?"})
    events = [e async for e in stream]
    result = await stream.get_workflow_state()
    assert result.status == "failed"
    assert result.error == (
        f"BudgetExceededError: run {run.run_id} went over its budget at step "
        "'Weather Agent': 57 tokens used, max_tokens is 40"
    )
    types = [e.type for e in events]
    # The response that went over is shown, then the step fails; the second response's
    # text had already streamed.
    assert types[-4:] == ["step-usage", "step-result", "step-finish", "finish"]
    assert Usage.from_json(result.usage).total_tokens == 57
    assert len(model_server.requests) == 2


@pytest.mark.asyncio
async def test_a_cost_budget_cannot_pass_an_unpriced_model(
    model_server: ModelServer, pm: PluginManager
) -> None:
    model_server.responder = lambda body: TextReply(["ok"], usage=TOOL_USAGE)
    agent = weather_agent(model_server)
    prices = PriceTable({"another-model": {"input": 1, "output": 1}})
    wf = Workflow(id="wf", prices=prices, budget=Budget(max_cost=1.0))
    result = await (
        await wf.then(step.from_agent(agent)).commit().create_run(plugin_manager=pm)
    ).start({"prompt": "hi"})
    assert result.status == "failed"
    assert "used model 'mock-gpt', which has no price in the run's price table" in (
        result.error or ""
    )
    # Priced, the same run is well within its budget.
    priced = Workflow(id="wf", prices=PRICES, budget=Budget(max_cost=1.0))
    ok = await (
        await priced.then(step.from_agent(agent)).commit().create_run(plugin_manager=pm)
    ).start({"prompt": "hi"})
    assert ok.status == "success" and Usage.from_json(ok.usage).cost == pytest.approx(
        cost(TOOL_USAGE)
    )


@pytest.mark.asyncio
async def test_any_step_may_report_usage_of_its_own_model_calls(pm: PluginManager) -> None:
    @step(id="custom-llm")
    async def custom(ctx: StepContext[Any]) -> dict[str, int]:
        usage = Usage(input_tokens=3, output_tokens=4, total_tokens=7, requests=1, cost=0.01)
        await ctx.report_usage(usage, model="house-model", provider="acme", started_at=1)
        return {"n": 1}

    result = await (
        await Workflow(id="wf").then(custom).commit().create_run(plugin_manager=pm)
    ).start({})
    assert Usage.from_json(result.usage) == Usage(3, 4, 7, requests=1, cost=0.01)
