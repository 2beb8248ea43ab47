"""Mastra's ``describe('Agent as step')`` (workflow.test.ts line 5931). Mastra's agents talk
to ``MockLanguageModelV1``; ours talk HTTP to the local model server, which answers "Paris"
to a question about France and "London" otherwise."""

from __future__ import annotations

from typing import Any

import pytest

from stepstream import PluginManager, Step, Workflow, step
from stepstream.agents import Agent
from stepstream.testing import ModelServer, TextReply

from .expect import ok, steps

PROMPTS = {"prompt1": "Capital of France, just the name", "prompt2": "Capital of UK, just the name"}


def _agents(model_server: ModelServer) -> tuple[Agent, Agent]:
    def answer(body: dict[str, Any]) -> TextReply:
        asked = str(body["messages"][-1]["content"])
        return TextReply(["Paris" if "France" in asked else "London"])

    model_server.responder = answer
    return tuple(  # type: ignore[return-value]
        Agent(
            name, "test agent instructions", "mock-gpt", base_url=model_server.base_url, api_key="k"
        )
        for name in ("test-agent-1", "test-agent-2")
    )


def _start_step() -> Step[Any, Any]:
    return Step(id="start", execute=lambda ctx: dict(ctx.input_data))


@pytest.mark.asyncio
async def test_should_be_able_to_use_an_agent_as_a_step(
    pm: PluginManager, model_server: ModelServer
) -> None:
    """workflow.test.ts line 5932."""
    agent1, agent2 = _agents(model_server)
    start = _start_step()
    wf = (
        Workflow(id="test-workflow")
        .then(start)
        .map({"prompt": {"step": start, "path": "prompt1"}})
        .then(step.from_agent(agent1))
        .map({"prompt": {"step": start, "path": "prompt2"}})
        .then(step.from_agent(agent2))
        .commit()
    )
    result = await (await wf.create_run(plugin_manager=pm)).start(PROMPTS)
    assert steps(result)["test-agent-1"] == ok({"prompt": PROMPTS["prompt1"]}, {"text": "Paris"})
    assert steps(result)["test-agent-2"] == ok({"prompt": PROMPTS["prompt2"]}, {"text": "London"})


@pytest.mark.asyncio
async def test_should_be_able_to_use_an_agent_in_parallel(
    pm: PluginManager, model_server: ModelServer
) -> None:
    """workflow.test.ts line 6052."""
    agent1, agent2 = _agents(model_server)
    seen: list[Any] = []

    def nested(wf_id: str, key: str, agent: Agent) -> Workflow:
        start = _start_step()
        return (
            Workflow(id=wf_id)
            .then(start)
            .map({"prompt": {"step": start, "path": key}})
            .then(step.from_agent(agent))
            .commit()
        )

    def final(ctx: Any) -> Any:
        seen.append(ctx.input_data)
        return {"result": "success"}

    wf = (
        Workflow(id="test-workflow")
        .parallel(
            [
                nested("nested-workflow", "prompt1", agent1),
                nested("nested-workflow-2", "prompt2", agent2),
            ]
        )
        .then(Step(id="finalStep", execute=final))
        .commit()
    )
    result = await (await wf.create_run(plugin_manager=pm)).start(PROMPTS)
    assert seen == [{"nested-workflow": {"text": "Paris"}, "nested-workflow-2": {"text": "London"}}]
    assert steps(result)["finalStep"] == ok(seen[0], {"result": "success"})
    assert steps(result)["nested-workflow"] == ok(PROMPTS, {"text": "Paris"})
    assert steps(result)["nested-workflow-2"] == ok(PROMPTS, {"text": "London"})
