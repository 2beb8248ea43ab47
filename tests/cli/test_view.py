"""The live view's state machine and text helpers, without a terminal or a process."""

from __future__ import annotations

from typing import Any

from stepstream.cli._view import RunView, StepLabels, brief, duration, step_line
from stepstream.events import (
    StepResultEvent,
    StepStartEvent,
    StepSuspendedEvent,
    ToolCallDeltaEvent,
    ToolCallStreamingStartEvent,
)

AGENT: dict[str, Any] = {
    "tool_call_id": "writer",
    "tool_name": "Writer",
    "name": "Writer",
    "args": {},
}


def test_a_nested_agent_steps_text_and_timing() -> None:
    view = RunView()
    view.handle(StepStartEvent(run_id="r", seq=1, step_id="outer", input_data={}, started_at=0))
    start = StepStartEvent(run_id="r", seq=2, step_id="outer.Writer", input_data={}, started_at=5)
    view.handle(start)
    agent = view.handle(ToolCallStreamingStartEvent(run_id="r", seq=3, **AGENT))
    for seq, text in enumerate(["Hello", ",\nworld"], start=4):
        view.handle(ToolCallDeltaEvent(run_id="r", seq=seq, args_text_delta=text, **AGENT))
    assert agent is not None and agent.step_id == "outer.Writer" and agent.depth == 1
    assert agent.text == "Hello,\nworld"
    ended = StepResultEvent(
        run_id="r", seq=6, step_id="outer.Writer", status="success", output={}, ended_at=1505
    )
    assert view.handle(ended) is agent
    assert step_line(agent) == "✓ outer.Writer success in 1.50 s"
    assert list(view.open) == ["outer"]


def test_a_resumed_step_is_timed_from_its_resume() -> None:
    view = RunView()
    first = StepStartEvent(run_id="r", seq=1, step_id="approve", input_data={}, started_at=0)
    view.handle(first)
    suspended = view.handle(
        StepSuspendedEvent(
            run_id="r", seq=2, step_id="approve", suspend_payload={"q": 1}, suspended_at=3
        )
    )
    assert (
        suspended is not None and step_line(suspended) == '⏸ approve suspended after 3 ms: {"q":1}'
    )
    again = first.model_copy(update={"seq": 3, "resumed_at": 60_000})
    resumed = view.handle(again)
    failed = StepResultEvent(
        run_id="r",
        seq=4,
        step_id="approve",
        status="failed",
        error="KeyError: 'x'",
        ended_at=60_040,
    )
    view.handle(failed)
    assert resumed is not None
    assert step_line(resumed) == "✗ approve failed in 40 ms: KeyError: 'x'"


def test_durations_and_brief_values() -> None:
    assert [duration(ms) for ms in (7, 1250, 125_000)] == ["7 ms", "1.25 s", "2 min 5 s"]
    assert brief({"a": [1, 2]}) == '{"a":[1,2]}'
    assert brief("x" * 200, limit=10) == '"xxxxxxxx…'


def test_generated_step_ids_are_labelled_by_kind_and_position() -> None:
    mapping = "mapping_0b7e2c1a-5d1f-4c3e-9a51-2f8e6d4c3b2a"
    sleep = "sleep_1c8f3d2b-6e2a-4d4f-8b62-3a9f7e5d4c3b"
    labels = StepLabels()
    assert labels.label("fetch") == "fetch"
    assert labels.label(mapping) == "map #2"
    assert labels.label("fetch") == "fetch"  # a loop's repeat keeps its place
    assert labels.label(f"inner.{sleep}") == "inner.sleep #1"  # numbered within its workflow
    assert labels.label(sleep) == "sleep #3"
    assert labels.label(mapping) == "map #2"
    assert labels.text(f"{mapping} success: 1") == "map #2 success: 1"
    assert labels.label("mapping_not-a-uuid") == "mapping_not-a-uuid"
