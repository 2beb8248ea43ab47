"""The Mastra agent traces (cases b, b2, m, m2, m3) replayed against the local model server
with Mastra's mock behaviour (``mastra_mock_responder``).

Normalised as in ``traces.py``; in addition, by docs/mastra-compatibility.md, stepstream's
``tool-call-streaming-start`` and ``tool-call-delta`` carry the seed page's ``toolCallId`` and
``toolName`` beside Mastra's ``name``: the test checks them, then removes them to compare.
stepstream's own ``step-usage`` events (one after each model response's last delta or tool
call) are checked against the usage the mock reported, then removed, so every other event is
compared with Mastra's, shapes and order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from stepstream import StepContext, Workflow, get_plugin_manager, step
from stepstream.agents import Agent, RetryPolicy, tool
from stepstream.testing import FULL_TEXT, ModelServer, mastra_mock_responder

from .traces import Normaliser, assert_same, load_events, load_state

SEED_KEYS = ("toolCallId", "toolName")


@pytest.fixture
def mastra_server() -> Iterator[ModelServer]:
    with ModelServer(mastra_mock_responder) as server:
        yield server


def agent(server: ModelServer, instructions: str = "Suggest activities.", **kw: Any) -> Agent:
    return Agent(
        "Weather Agent",
        instructions,
        "mock-gpt",
        base_url=server.base_url,
        api_key="test-key",
        retry=RetryPolicy(initial_wait=0, jitter=0),
        **kw,
    )


async def record(wf: Workflow, input_data: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    run = await wf.create_run(plugin_manager=get_plugin_manager(load_entrypoints=False))
    stream = run.stream(input_data=input_data)
    events = [e.to_wire() async for e in stream]
    return events, (await stream.get_workflow_state()).to_wire()


def without_usage(
    events: list[dict[str, Any]], reported: list[tuple[int, int, int]]
) -> list[dict[str, Any]]:
    """Check then drop stepstream's ``step-usage`` events: one per model response, right
    after its last delta or tool call, with the (input, output, total) tokens it reported."""
    usage = [(i, e) for i, e in enumerate(events) if e["type"] == "step-usage"]
    assert [
        (e["payload"]["inputTokens"], e["payload"]["outputTokens"], e["payload"]["totalTokens"])
        for _, e in usage
    ] == reported
    for i, e in usage:
        assert events[i - 1]["type"] in ("tool-call-delta", "tool-call")
        assert e["payload"]["id"] == "Weather Agent" and e["payload"]["model"] == "mock-gpt"
    return [e for e in events if e["type"] != "step-usage"]


def without_seed_keys(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Check then drop the seed page's fields that stepstream adds to agent events."""
    out = []
    for e in events:
        if e["type"] in ("tool-call-streaming-start", "tool-call-delta"):
            assert (e["toolCallId"], e["toolName"]) == ("weatherAgent", "Weather Agent")
            e = {k: v for k, v in e.items() if k not in SEED_KEYS}
        out.append(e)
    return out


class City(BaseModel):
    city: str


class Prompt(BaseModel):
    prompt: str


@step(id="fetch-weather", description="Fetches weather forecast for a given city")
async def fetch_weather(ctx: StepContext[City]) -> Prompt:
    forecast = {
        "city": ctx.input_data.city,
        "maxTemp": 21,
        "minTemp": 12,
        "condition": "Partly cloudy",
    }
    return Prompt(
        prompt=f"Based on the following weather forecast for {forecast['city']}, suggest "
        f"activities: {json.dumps(forecast, separators=(',', ':'))}"
    )


@pytest.mark.asyncio
async def test_b_weather_agent(mastra_server: ModelServer) -> None:
    planner = agent(mastra_server, "You suggest activities based on a weather forecast.")
    wf = (
        Workflow(id="weather-workflow", input_schema=City)
        .then(fetch_weather)
        .then(step.from_agent(planner))
        .commit()
    )
    events, state = await record(wf, {"city": "London"})
    events = without_usage(events, [(10, 10, 20)])
    ours, mastra = Normaliser(), Normaliser()
    assert_same(ours(without_seed_keys(events)), mastra(load_events("b_weather_agent")), "events")
    assert_same(ours(state), mastra(load_state("b_weather_agent.state")), "state")
    assert state["result"]["text"] == FULL_TEXT
    assert len(mastra_server.requests) == 1


@tool
def get_weather(city: str) -> dict[str, Any]:
    """Get current weather for a location."""
    return {"temperature": 21, "conditions": f"Sunny in {city}"}


@pytest.mark.asyncio
async def test_b2_agent_tool_call(mastra_server: ModelServer) -> None:
    helper = agent(
        mastra_server,
        "Use the weather tool, then suggest activities.",
        tools={"weatherTool": get_weather},
    )
    wf = Workflow(id="agent-tool-wf").then(step.from_agent(helper)).commit()
    events, state = await record(wf, {"prompt": "USE_TOOL: what should I do in London?"})
    events = without_usage(events, [(10, 5, 15), (10, 10, 20)])
    ours, mastra = Normaliser(), Normaliser()
    assert_same(
        ours(without_seed_keys(events)), mastra(load_events("b2_agent_tool_call")), "events"
    )
    assert_same(ours(state), mastra(load_state("b2_agent_tool_call.state")), "state")
    assert len(mastra_server.requests) == 2


def _agent_wf(server: ModelServer) -> Workflow:
    return Workflow(id="agent-error-wf").then(step.from_agent(agent(server))).commit()


@pytest.mark.asyncio
async def test_m_midstream_error_fails_the_step_as_contracted(mastra_server: ModelServer) -> None:
    """Mastra forwards the error object then succeeds with the partial text; stepstream
    forwards the same error object, keeps the partial deltas, and fails the step."""
    events, state = await record(
        _agent_wf(mastra_server), {"prompt": "Suggest activities FAIL_MIDSTREAM"}
    )
    mastra_events = load_events("m_agent_midstream_error")
    ours, theirs = Normaliser(), Normaliser()
    mine = ours(without_seed_keys(events))
    expected = theirs(mastra_events)
    # Identical up to and including the forwarded error object.
    cut = [e["type"] for e in expected].index("error") + 1
    assert_same(mine[:cut], expected[:cut], "events up to the error")
    assert [e["type"] for e in mine[cut:]] == [e["type"] for e in expected[cut:]]
    assert mine[cut]["payload"]["status"] == "failed"  # Mastra: "success"
    assert expected[cut]["payload"]["status"] == "success"
    assert state["status"] == "failed"
    assert state["error"].startswith("ModelStreamError: mock mid-stream failure")
    assert len(mastra_server.requests) == 1  # not replayed


@pytest.mark.asyncio
async def test_m3_socket_abort_fails_like_mastra(mastra_server: ModelServer) -> None:
    events, state = await record(
        _agent_wf(mastra_server), {"prompt": "Suggest activities FAIL_ABORT"}
    )
    ours, theirs = Normaliser(), Normaliser()
    mine = ours(without_seed_keys(events))
    expected = theirs(load_events("m3_agent_socket_abort"))
    assert [e["type"] for e in mine] == [e["type"] for e in expected]
    failed = [e for e in mine if e["type"] == "step-result"]
    assert failed[0]["payload"]["error"].startswith("<error: connection to the model failed")
    # Same events but for the error message (ours: the cause; Mastra's: "terminated").
    for a, b in zip(mine, expected, strict=True):
        if a["type"] != "step-result":
            assert_same(a, b, a["type"])
        else:
            assert list(a["payload"]) == list(b["payload"])
    mastra_state = theirs(load_state("m3_agent_socket_abort.state"))
    assert state["status"] == mastra_state["status"] == "failed"
    assert list(state) == list(mastra_state)
    assert len(mastra_server.requests) == 1


@pytest.mark.asyncio
async def test_m2_http_500_retries_then_fails_never_hangs(mastra_server: ModelServer) -> None:
    """Mastra forwards a retry error and then hangs forever; stepstream retries (one layer),
    forwards the provider's error object, fails the step, and finishes the stream."""
    events, state = await record(
        _agent_wf(mastra_server), {"prompt": "Suggest activities FAIL_HTTP"}
    )
    mastra_types = [e["type"] for e in load_events("m2_agent_http_error")]
    assert mastra_types == ["start", "step-start", "tool-call-streaming-start", "error"]
    assert [e["type"] for e in events] == [*mastra_types, "step-result", "step-finish", "finish"]
    assert events[3]["error"] == {
        "message": "mock upstream failure",
        "type": "server_error",
        "code": "mock_500",
    }
    assert state["status"] == "failed"
    assert state["error"] == "ModelError: mock upstream failure (status 500, after 3 attempts)"
    assert len(mastra_server.requests) == 3  # Mastra's AI SDK also makes 3 attempts
