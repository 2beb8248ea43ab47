"""Agents and agent steps against a real OpenAI-compatible server (real HTTP and SSE)."""

from __future__ import annotations

import asyncio
import copy
import json
import pickle
from typing import Any

import pytest

from stepstream import (
    Event,
    ModelError,
    PluginManager,
    Workflow,
    get_plugin_manager,
    hookimpl,
    step,
)
from stepstream.adapter import AgentChunk, Finish, TextDelta, ToolCallRequest
from stepstream.agents import Agent, RetryPolicy, ToolResult, tool
from stepstream.testing import (
    DropReply,
    HTTPErrorReply,
    ModelServer,
    Recorder,
    ReplySequence,
    TextReply,
    ToolCallReply,
)

from ..conftest import assert_no_tasks_left, leave_after_deltas

FAST = RetryPolicy(initial_wait=0.0, jitter=0.0)


def make_agent(server: ModelServer, **kw: Any) -> Agent:
    return Agent(
        "Weather Agent",
        "Suggest activities.",
        "mock-gpt",
        base_url=server.base_url,
        api_key="test-key",
        retry=kw.pop("retry", FAST),
        **kw,
    )


async def run_agent_step(
    agent: Agent, pm: PluginManager, prompt: str = "Hi", **stream_kw: Any
) -> tuple[list[Event], Any]:
    wf = Workflow(id="wf").then(step.from_agent(agent)).commit()
    run = await wf.create_run(plugin_manager=pm)
    stream = run.stream(input_data={"prompt": prompt}, **stream_kw)
    events = [e async for e in stream]
    return events, await stream.get_workflow_state()


@pytest.mark.asyncio
async def test_text_streams_one_delta_per_chunk_in_order(
    model_server: ModelServer, pm: PluginManager, recorder: Recorder
) -> None:
    pieces = [f"w{i} " for i in range(200)] + ["", "ünï", "\n", " end."]
    model_server.responder = lambda body: TextReply(pieces)
    events, result = await run_agent_step(make_agent(model_server), pm)
    deltas = [e for e in events if e.type == "tool-call-delta"]
    expected = [p for p in pieces if p]  # an empty chunk carries no text
    assert [d.args_text_delta for d in deltas] == expected
    assert result.result == {"text": "".join(expected)}
    types = [e.type for e in events]
    assert types[:3] == ["start", "step-start", "tool-call-streaming-start"]
    assert types[-3:] == ["step-result", "step-finish", "finish"]
    start = events[2].to_wire()
    assert start == {
        "type": "tool-call-streaming-start",
        "toolCallId": "weatherAgent",
        "toolName": "Weather Agent",
        "name": "Weather Agent",
        "args": {"prompt": "Hi"},
    }
    assert recorder.events == events
    request = model_server.requests[0]
    assert request["messages"] == [
        {"role": "system", "content": "Suggest activities."},
        {"role": "user", "content": "Hi"},
    ]
    assert request["stream"] is True and "tools" not in request
    await assert_no_tasks_left()


@tool
def weather_tool(city: str) -> dict[str, object]:
    """Current weather for a city."""
    return {"temperature": 21, "conditions": f"Sunny in {city}"}


@pytest.mark.asyncio
async def test_tool_call_with_streamed_arguments_then_a_second_turn(
    model_server: ModelServer, pm: PluginManager
) -> None:
    model_server.responder = ReplySequence(
        [
            ToolCallReply("weather_tool", ['{"ci', 'ty":', '"Oslo"}'], call_id="call_9"),
            TextReply(["Go ", "skiing."]),
        ]
    )
    agent = make_agent(model_server, tools=[weather_tool])
    events, result = await run_agent_step(agent, pm, "What to do?")
    wire = [e.to_wire() for e in events if e.type in ("tool-call", "tool-result")]
    assert wire == [
        {
            "type": "tool-call",
            "toolCallId": "call_9",
            "toolName": "weather_tool",
            "args": {"city": "Oslo"},
        },
        {
            "type": "tool-result",
            "toolCallId": "call_9",
            "toolName": "weather_tool",
            "args": {"city": "Oslo"},
            "result": {"temperature": 21, "conditions": "Sunny in Oslo"},
        },
    ]
    assert result.result == {"text": "Go skiing."}
    first, second = model_server.requests
    assert first["tools"][0]["function"]["name"] == "weather_tool"
    assert second["messages"][-2]["tool_calls"][0]["function"] == {
        "name": "weather_tool",
        "arguments": '{"city":"Oslo"}',
    }
    assert second["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "call_9",
        "content": json.dumps({"temperature": 21, "conditions": "Sunny in Oslo"}),
    }


@pytest.mark.asyncio
async def test_tool_errors_go_back_to_the_model(
    model_server: ModelServer, pm: PluginManager
) -> None:
    @tool
    def broken(city: str) -> str:
        raise RuntimeError(f"no data for {city}")

    model_server.responder = ReplySequence(
        [
            ToolCallReply("broken", ['{"city":"Rome"}'], call_id="a"),
            ToolCallReply("missing", ["{}"], call_id="b"),
            TextReply(["Sorry."]),
        ]
    )
    events, result = await run_agent_step(make_agent(model_server, tools=[broken]), pm)
    results = [e.result for e in events if e.type == "tool-result"]
    assert results == [
        {"error": "RuntimeError: no data for Rome"},
        {"error": "unknown tool 'missing'"},
    ]
    assert result.status == "success" and len(model_server.requests) == 3


@pytest.mark.asyncio
async def test_429_then_success_honours_retry_after_with_one_retry_layer(
    model_server: ModelServer,
) -> None:
    model_server.responder = ReplySequence(
        [
            HTTPErrorReply(429, {"error": {"message": "slow down"}}, {"Retry-After": "1.25"}),
            TextReply(["ok"]),
        ]
    )
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    agent = make_agent(model_server, retry=RetryPolicy())
    chunks = [c async for c in agent.stream("Hi", sleep=sleep)]
    assert [c.text for c in chunks if isinstance(c, TextDelta)] == ["ok"]
    assert slept == [1.25]  # the server's Retry-After, not our backoff
    assert len(model_server.requests) == 2  # the SDK did not retry on its own


@pytest.mark.asyncio
async def test_500_until_retries_run_out_fails_the_step_clearly(
    model_server: ModelServer, pm: PluginManager
) -> None:
    model_server.responder = lambda body: HTTPErrorReply(
        500, {"error": {"message": "upstream down", "type": "server_error", "code": "e500"}}
    )
    agent = make_agent(model_server, retry=RetryPolicy(max_attempts=4, initial_wait=0, jitter=0))
    events, result = await run_agent_step(agent, pm)
    types = [e.type for e in events]
    assert types == [
        "start",
        "step-start",
        "tool-call-streaming-start",
        "error",
        "step-result",
        "step-finish",
        "finish",
    ]
    assert events[3].to_wire()["error"] == {
        "message": "upstream down",
        "type": "server_error",
        "code": "e500",
    }
    assert result.status == "failed"
    assert result.error == "ModelError: upstream down (status 500, after 4 attempts)"
    assert len(model_server.requests) == 4
    await assert_no_tasks_left()


@pytest.mark.asyncio
async def test_drop_after_tokens_is_reported_not_replayed(
    model_server: ModelServer, pm: PluginManager
) -> None:
    model_server.responder = lambda body: DropReply(["Acti", "vities", " for"])
    events, result = await run_agent_step(make_agent(model_server), pm)
    deltas = [e.args_text_delta for e in events if e.type == "tool-call-delta"]
    assert deltas == ["Acti", "vities", " for"]
    assert result.status == "failed"
    assert result.error.startswith("ModelStreamError: connection to the model failed")
    assert "not retried" in result.error
    assert len(model_server.requests) == 1
    # A dropped connection carries no error object: no error event (as in Mastra's m3).
    assert [e.type for e in events][-4:] == [
        "tool-call-delta",
        "step-result",
        "step-finish",
        "finish",
    ]


@pytest.mark.asyncio
async def test_consumer_stopping_mid_answer_closes_the_http_stream(
    model_server: ModelServer, pm: PluginManager, recorder: Recorder
) -> None:
    model_server.responder = lambda body: TextReply([f"t{i} " for i in range(500)], delay=0.005)
    wf = Workflow(id="wf").then(step.from_agent(make_agent(model_server))).commit()
    run = await wf.create_run(plugin_manager=pm)
    stream = run.stream(input_data={"prompt": "Hi"}, buffer_size=2)
    await leave_after_deltas(stream, 3)
    result = await stream.get_workflow_state()
    assert result.status == "canceled"
    assert await asyncio.to_thread(model_server.stream_ended.wait, 10)
    assert model_server.stream_endings == ["client-gone"]
    assert recorder.types()[-1] == "finish"
    await assert_no_tasks_left()


@pytest.mark.asyncio
async def test_standalone_agent_generate_and_stream(model_server: ModelServer) -> None:
    model_server.responder = lambda body: TextReply(["Hello", " there"])
    agent = make_agent(model_server, temperature=0)
    result = await agent.generate("Hi")
    assert result.text == "Hello there" and result.finish_reason == "stop"
    assert (result.usage.output_tokens, result.usage.requests) == (2, 1)
    assert model_server.requests[0]["temperature"] == 0
    chunks = [c async for c in agent.stream("Hi")]
    assert isinstance(chunks[-1], Finish)


def test_sync_twins(model_server: ModelServer) -> None:
    model_server.responder = lambda body: TextReply(["a", "b"])
    agent = make_agent(model_server)
    assert agent.generate_sync("Hi").text == "ab"
    assert [c.text for c in agent.stream_sync("Hi") if isinstance(c, TextDelta)] == ["a", "b"]


@pytest.mark.asyncio
async def test_missing_api_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    agent = Agent("A", "x", "m", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ModelError, match="set OPENAI_API_KEY"):
        await agent.generate("Hi")


@pytest.mark.asyncio
async def test_environment_configures_the_endpoint(
    model_server: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", model_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "from-env")
    model_server.responder = lambda body: TextReply(["env"])
    assert (await Agent("A", "x", "mock-gpt", retry=FAST).generate("Hi")).text == "env"


@pytest.mark.asyncio
async def test_max_steps_stops_a_tool_loop(model_server: ModelServer) -> None:
    model_server.responder = lambda body: ToolCallReply("weather_tool", ['{"city":"X"}'])
    agent = make_agent(model_server, tools=[weather_tool], max_steps=2)
    with pytest.raises(ModelError, match="still calling tools after max_steps=2"):
        await agent.generate("loop")
    assert len(model_server.requests) == 2


@pytest.mark.asyncio
async def test_hook_make_stream_adapter(model_server: ModelServer, recorder: Recorder) -> None:
    """A plugin's adapter replaces the built-in one for the agent step."""

    class Shouting:
        """Upper-cases every text delta, reusing the built-in state machine."""

        def __init__(self) -> None:
            from stepstream.agents import OpenAIStreamAdapter

            self.inner = OpenAIStreamAdapter()

        def feed(self, chunk: Any) -> list[AgentChunk]:
            return [
                TextDelta(c.text.upper()) if isinstance(c, TextDelta) else c
                for c in self.inner.feed(chunk)
            ]

        def finish(self) -> list[AgentChunk]:
            return self.inner.finish()

    asked: list[tuple[str, str]] = []

    class ShoutingPlugin:
        @hookimpl
        def make_stream_adapter(self, provider: str, model: str) -> Any:
            asked.append((provider, model))
            return Shouting()

    pm = get_plugin_manager(
        load_entrypoints=False, plugins=[("recorder", recorder), ("shouting", ShoutingPlugin())]
    )
    model_server.responder = lambda body: TextReply(["quiet ", "words"])
    events, result = await run_agent_step(make_agent(model_server), pm)
    assert [e.args_text_delta for e in events if e.type == "tool-call-delta"] == ["QUIET ", "WORDS"]
    assert result.result == {"text": "QUIET WORDS"}
    assert asked == [("openai", "mock-gpt")]
    # Blocking the built-in adapter with no replacement fails the step clearly.
    bare = get_plugin_manager(load_entrypoints=False, block=["openai-adapter"])
    _, failed = await run_agent_step(make_agent(model_server), bare)
    assert failed.error == "ModelError: no plugin makes a stream adapter for 'openai'"


def test_agent_ids_and_tool_names() -> None:
    agent = Agent("Weather Agent", "x", "m", tools={"weatherTool": weather_tool})
    assert agent.id == "weatherAgent"
    assert list(agent.tools) == ["weatherTool"]
    assert agent.tools["weatherTool"].schema()["function"]["name"] == "weatherTool"
    assert step.from_agent(agent).id == "Weather Agent"
    assert isinstance(ToolCallRequest("a", "b", "{}"), ToolCallRequest)
    assert ToolResult("a", "b", {}, 1).result == 1


def test_copies_keep_the_agents_manager_and_pickles_leave_it_behind(pm: PluginManager) -> None:
    """A pickle goes to another process (a Ray worker), where the run's manager serves the
    agent; a copy stays in this one and keeps the manager it was given."""
    agent = Agent("Copied", "Be brief.", "test-model", plugin_manager=pm, temperature=0.5)
    shallow, deep = copy.copy(agent), copy.deepcopy(agent)
    assert shallow.plugin_manager is pm and deep.plugin_manager is pm
    assert deep.temperature == 0.5 and deep.instructions == "Be brief."
    unpickled = pickle.loads(pickle.dumps(agent))
    assert unpickled.name == "Copied"
    assert unpickled.plugin_manager is not pm  # a default manager, made where it runs
    assert agent.plugin_manager is pm
