"""Mastra's ``describe('Interoperability (Actions)')`` (workflow.test.ts line 4093), and the
test of the same name in ``describe('Watch')`` (line 4437): a tool used as a step."""

from __future__ import annotations

from typing import Any

import pytest

from stepstream import PluginManager, Step, Workflow, step
from stepstream.agents import Tool
from stepstream.testing import Recorder

from .expect import ok, steps


def _tool_workflow(calls: list[str]) -> Workflow:
    def first(ctx: Any) -> Any:
        calls.append("step1")
        return {"name": "step1"}

    async def random_tool(name: str) -> Any:
        calls.append("random-tool")
        return {"name": name}

    tool = Tool(random_tool, name="random-tool")
    return (
        Workflow(id="test-workflow")
        .then(Step(id="step1", execute=first))
        .then(step.from_tool(tool))
        .commit()
    )


@pytest.mark.asyncio
async def test_should_be_able_to_use_all_action_types_in_a_workflow(pm: PluginManager) -> None:
    """workflow.test.ts line 4094."""
    calls: list[str] = []
    result = await (await _tool_workflow(calls).create_run(plugin_manager=pm)).start({})
    assert calls == ["step1", "random-tool"]
    assert steps(result)["step1"] == ok({}, {"name": "step1"})
    assert steps(result)["random-tool"] == ok({"name": "step1"}, {"name": "step1"})


@pytest.mark.asyncio
async def test_should_be_able_to_use_all_action_types_in_a_workflow_streamed(
    pm: PluginManager, recorder: Recorder
) -> None:
    """workflow.test.ts line 4437 (the same, streamed)."""
    calls: list[str] = []
    run = await _tool_workflow(calls).create_run(plugin_manager=pm)
    stream = run.stream({})
    events = [(e["type"], e["payload"].get("id")) for e in [ev.to_wire() async for ev in stream]]
    assert events == [
        ("start", None),
        ("step-start", "step1"),
        ("step-result", "step1"),
        ("step-finish", "step1"),
        ("step-start", "random-tool"),
        ("step-result", "random-tool"),
        ("step-finish", "random-tool"),
        ("finish", None),
    ]
    result = await stream.get_workflow_state()
    assert steps(result)["random-tool"] == ok({"name": "step1"}, {"name": "step1"})
