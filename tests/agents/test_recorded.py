"""Recorded models: a stored run's agent answers replayed with no request to the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stepstream import PluginManager, StepContext, Workflow, step, time_travel
from stepstream.agents import Agent, RecordedModel, RetryPolicy, tool
from stepstream.errors import ReplayError
from stepstream.storage.sqlite import SQLiteStorage
from stepstream.testing import ModelServer, ReplySequence, TextReply, ToolCallReply

FAST = RetryPolicy(initial_wait=0.0, jitter=0.0)
tool_calls: list[str] = []


@tool
def weather_tool(city: str) -> dict[str, object]:
    """Current weather for a city."""
    tool_calls.append(city)
    return {"temperature": 21, "conditions": f"Sunny in {city}"}


@step(id="ask")
def ask(ctx: StepContext[Any]) -> dict[str, str]:
    return {"prompt": f"What to do in {ctx.input_data['city']}?"}


def planner(server: ModelServer) -> Workflow:
    agent = Agent(
        "Planner",
        "Plan a day.",
        "mock-gpt",
        base_url=server.base_url,
        api_key="test-key",
        retry=FAST,
        tools=[weather_tool],
    )
    return Workflow(id="plan").then(ask).then(step.from_agent(agent)).commit()


def _shape(events: list[Any]) -> list[dict[str, Any]]:
    kinds = ("tool-call-streaming-start", "tool-call-delta", "tool-call", "tool-result")
    usage = [
        {k: v for k, v in e.to_wire()["payload"].items() if not k.endswith("At")}
        for e in events
        if e.type == "step-usage"
    ]
    return [e.to_wire() for e in events if e.type in kinds] + usage


@pytest.fixture
def answered(model_server: ModelServer) -> ModelServer:
    tool_calls.clear()
    model_server.responder = ReplySequence(
        [
            ToolCallReply("weather_tool", ['{"ci', 'ty":"Oslo"}'], usage={"prompt_tokens": 7}),
            TextReply(["Go ", "ski", "ing."], usage={"prompt_tokens": 9, "completion_tokens": 3}),
        ]
    )
    return model_server


@pytest.mark.asyncio
async def test_time_travel_with_recorded_models_replays_the_answer_without_the_model(
    answered: ModelServer, pm: PluginManager, tmp_path: Path
) -> None:
    store = SQLiteStorage(tmp_path / "runs.db")
    wf = planner(answered)
    source = await wf.create_run(plugin_manager=pm, storage=store)
    live = [e async for e in source.stream(input_data={"city": "Oslo"})]
    assert (await source.wait()).result == {"text": "Go skiing."}
    asked, tool_calls[:] = len(answered.requests), []
    assert asked == 2

    fork = await time_travel(
        wf, source.run_id, step="Planner", replay_models=True, storage=store, plugin_manager=pm
    )
    result = await fork.wait()
    replayed = [e async for e in fork.stream(after_seq=-1)]

    assert len(answered.requests) == asked  # not one request more
    assert tool_calls == []  # the tool's recorded result is replayed, not the tool
    assert result.status == "success" and result.result == {"text": "Go skiing."}
    assert _shape(replayed) == _shape(live)
    assert result.usage is not None and result.usage["input_tokens"] == 16
    await store.close()


@pytest.mark.asyncio
async def test_a_recording_replays_from_python_and_refuses_a_changed_prompt(
    answered: ModelServer, pm: PluginManager, tmp_path: Path
) -> None:
    store = SQLiteStorage(tmp_path / "runs.db")
    wf = planner(answered)
    source = await wf.create_run(plugin_manager=pm, storage=store)
    await source.start({"city": "Oslo"})
    asked = len(answered.requests)
    recording = await RecordedModel.from_run(store, source.run_id)
    assert [(a.agent, a.prompt) for a in recording.answers] == [("Planner", "What to do in Oslo?")]

    with recording.replaying():
        again = await (await wf.create_run(plugin_manager=pm)).start({"city": "Oslo"})
        other = await (await wf.create_run(plugin_manager=pm)).start({"city": "Rome"})
    assert again.result == {"text": "Go skiing."}
    assert other.status == "failed"
    assert other.error is not None and other.error.startswith("ReplayError: ")
    assert "'Planner'" in other.error and "What to do in Rome?" in other.error
    assert len(answered.requests) == asked
    await store.close()


@pytest.mark.asyncio
async def test_each_recorded_answer_is_replayed_once_in_order() -> None:
    start = {"type": "tool-call-streaming-start", "toolName": "A", "args": {"prompt": "p"}}

    def delta(text: str) -> dict[str, Any]:
        return {"type": "tool-call-delta", "toolName": "A", "argsTextDelta": text}

    end = {"type": "step-result", "payload": {"id": "A", "status": "success"}}
    failed = {"type": "step-result", "payload": {"id": "A", "status": "failed", "error": "E: x"}}
    recording = RecordedModel.from_events([start, delta("one"), end, start, delta("two"), failed])
    first = [e async for e in recording.stream("A", "p")]
    assert [getattr(e, "text", None) for e in first] == ["one"]
    seen: list[Any] = []
    with pytest.raises(Exception, match="replayed: E: x"):
        async for event in recording.stream("A", "p"):
            seen.append(event)
    assert [getattr(e, "text", None) for e in seen] == ["two"]
    with pytest.raises(ReplayError, match="no answer of agent 'A'"):
        async for _ in recording.stream("A", "p"):
            pass


def test_tool_calls_of_two_agents_streaming_at_once_are_left_out() -> None:
    events = [
        {"type": "tool-call-streaming-start", "toolName": name, "args": {"prompt": "p"}}
        for name in ("A", "B")
    ] + [
        {"type": "tool-call", "toolCallId": "c", "toolName": "t", "args": {}},
        {"type": "step-result", "payload": {"id": "A", "status": "success"}},
        {"type": "step-result", "payload": {"id": "B", "status": "success"}},
    ]
    assert RecordedModel.from_events(events).answers == ()
