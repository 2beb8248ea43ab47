"""Every non-agent Mastra trace replayed with the Python twin of its workflow.

Events and final state are compared after the normalisation documented in ``traces.py``:
event order, types, keys, key order and values.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from stepstream import RuntimeContext, Workflow, get_plugin_manager

from . import workflows
from .traces import Normaliser, assert_same, error_message, load_events, load_state

CASES: dict[str, tuple[Callable[[], Workflow], Any]] = {
    "a_sequence": (workflows.a_sequence, {"value": 21}),
    "c_parallel": (workflows.c_parallel, {"value": 3}),
    "d_branch": (workflows.d_branch, {"value": 7}),
    "e_step_throws": (workflows.e_step_throws, {"value": 1}),
    "f_dountil": (workflows.f_dountil, {"value": 0}),
    "f_dowhile": (workflows.f_dowhile, {"value": 0}),
    "g_foreach": (workflows.g_foreach, [{"n": 1}, {"n": 2}, {"n": 3}, {"n": 4}]),
    "h_nested": (workflows.h_nested, {"value": 1}),
    "l_map": (workflows.l_map, {"userId": "u1"}),
}


async def _record(
    wf: Workflow, input_data: Any, runtime_context: RuntimeContext | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    run = await wf.create_run(plugin_manager=get_plugin_manager(load_entrypoints=False))
    stream = run.stream(input_data=input_data, runtime_context=runtime_context)
    events = [event.to_wire() async for event in stream]
    state = (await stream.get_workflow_state()).to_wire()
    return events, state


def _compare(name: str, events: list[dict[str, Any]], state: dict[str, Any]) -> None:
    norm = Normaliser()
    ours_events, ours_state = norm(events), norm(state)
    mastra = Normaliser()
    assert_same(ours_events, mastra(load_events(name)), f"{name} events")
    assert_same(ours_state, mastra(load_state(f"{name}.state")), f"{name} state")


@pytest.mark.asyncio
@pytest.mark.parametrize("name", sorted(CASES))
async def test_trace_matches_mastra(name: str) -> None:
    build, input_data = CASES[name]
    events, state = await _record(build(), input_data)
    _compare(name, events, state)


@pytest.mark.asyncio
async def test_runtime_context_trace() -> None:
    rc = RuntimeContext()
    rc.set("locale", "fr")
    events, state = await _record(workflows.j_runtime_context(), {"name": "Ada"}, rc)
    _compare("j_runtime_context", events, state)


@pytest.mark.asyncio
async def test_step_error_string_is_type_and_message() -> None:
    """docs/mastra-compatibility.md: ``error`` is ``ExceptionType: message``, never a
    traceback on the wire."""
    events, state = await _record(workflows.e_step_throws(), {"value": 1})
    failed = [
        e for e in events if e["type"] == "step-result" and e["payload"]["status"] == "failed"
    ]
    assert [e["payload"]["error"] for e in failed] == ["RuntimeError: boom failed on purpose"]
    assert state["error"] == "RuntimeError: boom failed on purpose"
    mastra = load_state("e_step_throws.state")
    assert error_message(mastra["error"]) == "boom failed on purpose"


@pytest.mark.asyncio
async def test_invalid_input_differs_from_mastra_as_contracted() -> None:
    """docs/mastra-compatibility.md (case k): Mastra runs the step with bad input; stepstream
    fails the run with a validation error before any step, and ``start``/``finish`` still
    frame the stream."""
    events, state = await _record(workflows.k_invalid_input(), {"value": "not-a-number"})
    mastra = load_events("k_invalid_input")
    assert [e["type"] for e in mastra] == [
        "start",
        "step-start",
        "step-result",
        "step-finish",
        "finish",
    ]
    assert [e["type"] for e in events] == ["start", "finish"]
    assert state["status"] == "failed"
    assert list(state) == ["status", "steps", "error"]
    assert state["steps"] == {"input": {"value": "not-a-number"}}
    assert state["error"].startswith("InputValidationError: workflow 'invalid-input-wf' input")
    assert "value" in state["error"]


@pytest.mark.asyncio
async def test_suspend_resume_trace() -> None:
    """Case i: the stream stays open on suspend and ``resume()`` continues it to ``finish``."""
    wf = workflows.i_suspend_resume()
    run = await wf.create_run(plugin_manager=get_plugin_manager(load_entrypoints=False))
    stream = run.stream(input_data={"item": "invoice-42"})
    seen: list[dict[str, Any]] = []
    suspended_seen = asyncio.Event()

    async def consume() -> None:
        async for event in stream:
            seen.append(event.to_wire())
            if event.type == "step-suspended":
                suspended_seen.set()

    reader = asyncio.create_task(consume())
    suspended_state = (await stream.get_workflow_state()).to_wire()
    await suspended_seen.wait()
    part1 = list(seen)
    resume_result = (
        await run.resume(step="approve", resume_data={"approved": True, "approver": "alice"})
    ).to_wire()
    await reader
    final_state = (await stream.get_workflow_state()).to_wire()

    norm = Normaliser()
    mastra = Normaliser()
    assert_same(norm(part1), mastra(load_events("i_suspend_resume.part1")), "part1")
    assert_same(norm(seen), mastra(load_events("i_suspend_resume")), "all events")
    assert_same(
        norm(suspended_state),
        mastra(load_state("i_suspend_resume.suspended.state")),
        "suspended state",
    )
    assert_same(
        norm(resume_result), mastra(load_state("i_suspend_resume.resume-result")), "resume()"
    )
    assert_same(norm(final_state), mastra(load_state("i_suspend_resume.state")), "final state")
