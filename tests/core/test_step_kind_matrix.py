"""Every step kind in every position: ``then``, ``parallel``, ``branch``, ``dowhile``,
``dountil`` and ``foreach`` each take a plain step, a nested workflow, an agent step and a map
step alike, with the same events (issue 13's matrix)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from stepstream import PluginManager, Step, StepContext, Workflow, step
from stepstream.agents import Agent
from stepstream.graph import MapStep
from stepstream.testing import ModelServer, Recorder, TextReply

KINDS = ["plain", "nested", "agent", "map"]
POSITIONS = ["then", "parallel", "branch", "dowhile", "dountil", "foreach"]


def _plus_one(ctx: StepContext[Any]) -> Any:
    return {"value": ctx.input_data["value"] + 1}


def _kind(kind: str, model_server: ModelServer) -> tuple[Step[Any, Any], Any, Callable[[Any], Any]]:
    """The step of ``kind``, an input item for it, and the output it gives for an item."""
    if kind == "agent":
        model_server.responder = lambda body: TextReply([str(body["messages"][-1]["content"]), "!"])
        agent = Agent("echo", "Repeat.", "mock-gpt", base_url=model_server.base_url, api_key="k")
        return step.from_agent(agent), {"prompt": "hi"}, lambda item: {"text": item["prompt"] + "!"}
    made: Step[Any, Any]
    if kind == "plain":
        made = Step(id="plain", execute=_plus_one)
    elif kind == "nested":
        made = Workflow(id="nested").then(Step(id="inner", execute=_plus_one)).commit()
    else:
        made = MapStep(_plus_one)
    return made, {"value": 1}, lambda item: {"value": item["value"] + 1}


def _place(wf: Workflow, position: str, made: Step[Any, Any]) -> Workflow:
    if position == "then":
        return wf.then(made)
    if position == "parallel":
        return wf.parallel([made])
    if position == "branch":
        return wf.branch([(lambda ctx: True, made)])
    if position == "dowhile":
        return wf.dowhile(made, lambda ctx: False)
    if position == "dountil":
        return wf.dountil(made, lambda ctx: True)
    return wf.foreach(made, concurrency=2)


@pytest.mark.asyncio
@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("kind", KINDS)
async def test_every_step_kind_runs_in_every_position(
    kind: str, position: str, pm: PluginManager, recorder: Recorder, model_server: ModelServer
) -> None:
    made, item, output_of = _kind(kind, model_server)
    wf = _place(Workflow(id="wf"), position, made).commit()
    input_data = [item, item] if position == "foreach" else item
    result = await (await wf.create_run(plugin_manager=pm)).start(input_data)

    assert result.status == "success", result.error
    expected = output_of(item)
    if position == "foreach":
        assert result.result == [expected, expected]
    elif position in ("parallel", "branch"):
        assert result.result == {made.id: expected}
    else:
        assert result.result == expected
    # The step itself opens and closes once, as any step does, whatever its kind.
    events = [
        (e.type, e.step_id) for e in recorder.events if getattr(e, "step_id", None) == made.id
    ]
    own = [t for t, _ in events if t in ("step-start", "step-result", "step-finish")]
    assert own == ["step-start", "step-result", "step-finish"]
    assert result.to_wire()["steps"][made.id]["status"] == "success"
    types = recorder.types()
    assert types[0] == "start" and types[-1] == "finish"
    if kind == "nested":  # the nested workflow's own step streams under its prefixed id
        inner = [e.step_id for e in recorder.events if e.type == "step-start"]
        assert "nested.inner" in inner
        assert inner.count("nested.inner") == (2 if position == "foreach" else 1)


@pytest.mark.asyncio
async def test_parallel_outputs_are_plain_dicts_of_json_outputs_everywhere(
    pm: PluginManager,
) -> None:
    """What a map, a condition and the next step see after a parallel is the same plain dict
    keyed by step id, each output in its JSON form (models dumped)."""
    from pydantic import BaseModel

    class Amount(BaseModel):
        amount: float

    seen: dict[str, Any] = {}

    def record(where: str, value: Any) -> Any:
        seen[where] = value
        return value

    tax = Step(id="tax", execute=lambda ctx: Amount(amount=3), output_schema=Amount)
    ship = Step(id="ship", execute=lambda ctx: Amount(amount=5), output_schema=Amount)
    wf = (
        Workflow(id="wf")
        .parallel([tax, ship])
        .map(lambda ctx: record("map", ctx.input_data))
        .branch(
            [
                (
                    lambda ctx: bool(record("condition", ctx.input_data)),
                    Step(id="next", execute=lambda ctx: record("step", ctx.input_data)),
                )
            ]
        )
        .commit()
    )
    result = await (await wf.create_run(plugin_manager=pm)).start({})
    expected = {"tax": {"amount": 3.0}, "ship": {"amount": 5.0}}
    assert result.status == "success"
    assert seen == {"map": expected, "condition": expected, "step": expected}
