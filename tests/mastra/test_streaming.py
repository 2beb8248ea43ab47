"""Mastra's ``describe('Streaming')`` (workflow.test.ts line 33): ``run.stream()``."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from stepstream import PluginManager, Step, StepContext, Workflow, step
from stepstream.agents import Agent
from stepstream.testing import ModelServer, TextReply

from .expect import NUMBER, ok, steps
from .test_suspend_and_resume import IMPROVED_TONE, TONE, counted, suspending_once


def _shape(events: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [(e["type"], (e.get("payload") or {}).get("id") or e.get("name")) for e in events]


@pytest.mark.asyncio
async def test_should_generate_a_stream(pm: PluginManager) -> None:
    """workflow.test.ts line 34."""
    wf = (
        Workflow(id="test-workflow")
        .then(Step(id="step1", execute=lambda ctx: {"result": "success1"}))
        .then(Step(id="step2", execute=lambda ctx: {"result": "success2"}))
        .commit()
    )
    run = await wf.create_run("test-run-id", plugin_manager=pm)
    stream = run.stream({})
    events = [e.to_wire() async for e in stream]
    result = await stream.get_workflow_state()
    assert len(events) == 8
    assert events[0] == {"type": "start", "payload": {"runId": "test-run-id"}}
    assert events[1]["payload"] == {
        "id": "step1",
        "payload": {},
        "startedAt": NUMBER,
        "status": "running",
    }
    assert events[2]["payload"] == {
        "id": "step1",
        "status": "success",
        "output": {"result": "success1"},
        "endedAt": NUMBER,
    }
    assert events[3] == {"type": "step-finish", "payload": {"id": "step1", "metadata": {}}}
    assert events[4]["payload"]["payload"] == {"result": "success1"}
    assert events[5]["payload"]["output"] == {"result": "success2"}
    assert events[7] == {"type": "finish", "payload": {"runId": "test-run-id"}}
    assert _shape(events)[1:7] == [
        ("step-start", "step1"),
        ("step-result", "step1"),
        ("step-finish", "step1"),
        ("step-start", "step2"),
        ("step-result", "step2"),
        ("step-finish", "step2"),
    ]
    assert steps(result)["step1"] == ok({}, {"result": "success1"})
    assert steps(result)["step2"] == ok({"result": "success1"}, {"result": "success2"})


@pytest.mark.asyncio
async def test_should_handle_basic_suspend_and_resume_flow(pm: PluginManager) -> None:
    """workflow.test.ts line 164 (resumed while the stream is read, as Mastra's setImmediate)."""
    calls: Counter[str] = Counter()
    prompt_agent = suspending_once("promptAgent", {"modelOutput": "test output"}, calls)
    wf = (
        Workflow(id="test-workflow")
        .then(counted("getUserInput", {"userInput": "test input"}, calls))
        .then(prompt_agent)
        .then(counted("evaluateToneConsistency", TONE, calls))
        .then(counted("improveResponse", {"improvedOutput": "improved output"}, calls))
        .then(counted("evaluateImprovedResponse", IMPROVED_TONE, calls))
        .commit()
    )
    run = await wf.create_run(plugin_manager=pm)
    stream = run.stream({"input": "test"})
    resume_data = {"stepId": "promptAgent", "context": {"userInput": "test input for resumption"}}
    resuming: list[asyncio.Task[Any]] = []
    async for event in stream:
        if event.type == "step-suspended":
            assert calls["promptAgent"] == 1
            resuming.append(
                asyncio.ensure_future(run.resume(step=prompt_agent, resume_data=resume_data))
            )
            assert calls["evaluateToneConsistency"] == 0
        if event.type == "finish":
            break
    await resuming[0]
    assert calls["evaluateToneConsistency"] == 1
    result = await stream.get_workflow_state()
    assert steps(result)["promptAgent"] == ok(
        {"userInput": "test input"},
        {"modelOutput": "test output"},
        resumePayload=resume_data,
        resumedAt=NUMBER,
        suspendedAt=NUMBER,
    )
    assert steps(result)["evaluateImprovedResponse"] == ok(
        {"improvedOutput": "improved output"}, IMPROVED_TONE
    )


@pytest.mark.asyncio
async def test_should_be_able_to_use_an_agent_as_a_step(
    pm: PluginManager, model_server: ModelServer
) -> None:
    """workflow.test.ts line 305 (the agents' answers stream as tool-call events)."""

    def answer(body: dict[str, Any]) -> TextReply:
        return TextReply(
            ["Paris" if "France" in str(body["messages"][-1]["content"]) else "London"]
        )

    model_server.responder = answer
    agent1, agent2 = (
        Agent(
            name, "test agent instructions", "mock-gpt", base_url=model_server.base_url, api_key="k"
        )
        for name in ("test-agent-1", "test-agent-2")
    )
    start = Step(id="start", execute=lambda ctx: dict(ctx.input_data))
    wf = (
        Workflow(id="test-workflow")
        .then(start)
        .map({"prompt": {"step": start, "path": "prompt1"}})
        .then(step.from_agent(agent1))
        .map({"prompt": {"step": start, "path": "prompt2"}})
        .then(step.from_agent(agent2))
        .commit()
    )
    run = await wf.create_run("test-run-id", plugin_manager=pm)
    prompts = {
        "prompt1": "Capital of France, just the name",
        "prompt2": "Capital of UK, just the name",
    }
    # `step-usage` is an event type of ours (docs/observability.md): Mastra has none.
    events = [e.to_wire() async for e in run.stream(prompts) if e.type != "step-usage"]
    kinds = [(t, i if not str(i).startswith("mapping_") else "mapping") for t, i in _shape(events)]
    agent_part = [
        ("step-start", "test-agent-1"),
        ("tool-call-streaming-start", "test-agent-1"),
        ("tool-call-delta", "test-agent-1"),
        ("step-result", "test-agent-1"),
        ("step-finish", "test-agent-1"),
    ]
    mapping = [("step-start", "mapping"), ("step-result", "mapping"), ("step-finish", "mapping")]
    assert kinds == [
        ("start", None),
        ("step-start", "start"),
        ("step-result", "start"),
        ("step-finish", "start"),
        *mapping,
        *agent_part,
        *mapping,
        *[(t, "test-agent-2") for t, _ in agent_part],
        ("finish", None),
    ]
    deltas = [e["argsTextDelta"] for e in events if e["type"] == "tool-call-delta"]
    assert deltas == ["Paris", "London"]
    assert [e["args"] for e in events if e["type"] == "tool-call-streaming-start"] == [
        {"prompt": prompts["prompt1"]},
        {"prompt": prompts["prompt2"]},
    ]


def _sleepy(sleep: Any) -> Workflow:
    wf = Workflow(id="test-workflow").then(
        Step(id="step1", execute=lambda ctx: {"result": "success1"})
    )
    return sleep(wf).then(Step(id="step2", execute=lambda ctx: {"result": "success2"})).commit()  # type: ignore[no-any-return]


async def _sleep_stream(pm: PluginManager, wf: Workflow) -> list[dict[str, Any]]:
    run = await wf.create_run("test-run-id", plugin_manager=pm)
    return [e.to_wire() async for e in run.stream({})]


def _check_sleep_events(events: list[dict[str, Any]]) -> None:
    assert len(events) == 11
    [sleep_id] = {e["payload"]["id"] for e in events if e["type"] == "step-waiting"}
    assert sleep_id.startswith("sleep_")
    assert _shape(events) == [
        ("start", None),
        ("step-start", "step1"),
        ("step-result", "step1"),
        ("step-finish", "step1"),
        ("step-waiting", sleep_id),
        ("step-result", sleep_id),
        ("step-finish", sleep_id),
        ("step-start", "step2"),
        ("step-result", "step2"),
        ("step-finish", "step2"),
        ("finish", None),
    ]
    assert events[4]["payload"] == {
        "id": sleep_id,
        "payload": {"result": "success1"},
        "startedAt": NUMBER,
        "status": "waiting",
    }
    # Mastra's sleep result carries its input and start, in this key order (default.ts).
    assert events[5]["payload"] == {
        "id": sleep_id,
        "payload": {"result": "success1"},
        "startedAt": events[4]["payload"]["startedAt"],
        "endedAt": NUMBER,
        "status": "success",
        "output": {"result": "success1"},
    }
    assert list(events[5]["payload"]) == [
        "id",
        "payload",
        "startedAt",
        "endedAt",
        "status",
        "output",
    ]


@pytest.mark.asyncio
async def test_should_handle_sleep_waiting_flow(pm: PluginManager) -> None:
    """workflow.test.ts line 602."""
    _check_sleep_events(await _sleep_stream(pm, _sleepy(lambda wf: wf.sleep(0.01))))


@pytest.mark.asyncio
async def test_should_handle_sleep_waiting_flow_with_fn_parameter(pm: PluginManager) -> None:
    """workflow.test.ts line 764."""
    seen: list[Any] = []

    async def duration(ctx: StepContext[Any]) -> float:
        seen.append(ctx.input_data)
        return 0.01

    _check_sleep_events(await _sleep_stream(pm, _sleepy(lambda wf: wf.sleep(duration))))
    assert seen == [{"result": "success1"}]


@pytest.mark.asyncio
async def test_should_handle_wait_for_event_waiting_flow(pm: PluginManager) -> None:
    """workflow.test.ts line 932 (the event is sent when the step waits, not after 2 s)."""
    wf = (
        Workflow(id="test-workflow")
        .then(Step(id="step1", execute=lambda ctx: {"result": "success1"}))
        .wait_for_event(
            "user-event-test", Step(id="step2", execute=lambda ctx: {"result": "success2"})
        )
        .commit()
    )
    run = await wf.create_run("test-run-id", plugin_manager=pm)
    events: list[dict[str, Any]] = []
    stream = run.stream({})
    async for event in stream:
        events.append(event.to_wire())
        if event.type == "step-waiting":
            assert run.status == "running"
            await run.send_event("user-event-test", {"value": "eventdata"})
    assert _shape(events) == [
        ("start", None),
        ("step-start", "step1"),
        ("step-result", "step1"),
        ("step-finish", "step1"),
        ("step-waiting", "step2"),
        ("step-start", "step2"),
        ("step-result", "step2"),
        ("step-finish", "step2"),
        ("finish", None),
    ]
    assert events[4]["payload"] == {
        "id": "step2",
        "payload": {"result": "success1"},
        "startedAt": NUMBER,
        "status": "waiting",
    }
    assert events[5]["payload"] == {
        "id": "step2",
        "payload": {"result": "success1"},
        "startedAt": events[4]["payload"]["startedAt"],
        "status": "running",
        "resumePayload": {"value": "eventdata"},
        "resumedAt": NUMBER,
    }
    assert events[6]["payload"]["output"] == {"result": "success2"}
    state = await stream.get_workflow_state()
    assert steps(state)["step1"] == ok({}, {"result": "success1"})
    assert steps(state)["step2"] == ok(
        {"result": "success1"},
        {"result": "success2"},
        resumePayload={"value": "eventdata"},
        resumedAt=NUMBER,
    )
