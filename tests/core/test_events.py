"""The event union: frozen models, wire shapes, round trips."""

from __future__ import annotations

import inspect
import json
import typing

import pydantic
import pytest

from stepstream import events as ev

ALL = typing.get_args(typing.get_args(ev.Event)[0])

SAMPLES: list[ev._EventBase] = [
    ev.StartEvent(run_id="r", seq=0),
    ev.StepStartEvent(run_id="r", seq=1, step_id="s", input_data={"a": 1}, started_at=5),
    ev.StepStartEvent(
        run_id="r",
        seq=2,
        step_id="s",
        input_data={"a": 1},
        started_at=5,
        suspend_payload={"why": "x"},
        suspended_at=6,
        resume_payload={"ok": True},
        resumed_at=7,
    ),
    ev.ToolCallStreamingStartEvent(
        run_id="r", seq=3, tool_call_id="c", tool_name="Agent", name="Agent", args={"prompt": "p"}
    ),
    ev.ToolCallDeltaEvent(
        run_id="r",
        seq=4,
        tool_call_id="c",
        tool_name="Agent",
        name="Agent",
        args={"prompt": "p"},
        args_text_delta="Hi",
    ),
    ev.ToolCallEvent(run_id="r", seq=5, tool_call_id="t", tool_name="tool", args={"x": 1}),
    ev.ToolResultEvent(
        run_id="r", seq=6, tool_call_id="t", tool_name="tool", args={"x": 1}, result=[1]
    ),
    ev.StepResultEvent(run_id="r", seq=7, step_id="s", status="success", output=None, ended_at=8),
    ev.StepResultEvent(run_id="r", seq=8, step_id="s", status="failed", error="E: x", ended_at=8),
    ev.StepSuspendedEvent(run_id="r", seq=9, step_id="s", suspend_payload=None, suspended_at=9),
    ev.StepFinishEvent(run_id="r", seq=10, step_id="s"),
    ev.StepWaitingEvent(run_id="r", seq=10, step_id="sleep_1", input_data={"a": 1}, started_at=5),
    ev.ErrorEvent(run_id="r", seq=11, error={"message": "m"}),
    ev.StepOutputEvent(run_id="r", seq=12, step_id="s", output="data"),
    ev.PluginErrorEvent(run_id="r", seq=13, plugin="p", hook="on_event", error="E: x"),
    ev.StepUsageEvent(
        run_id="r",
        seq=14,
        step_id="Agent",
        model="gpt-x",
        response_model="gpt-x-1",
        provider="openai",
        finish_reason="stop",
        input_tokens=10,
        output_tokens=4,
        total_tokens=14,
        cached_input_tokens=2,
        reasoning_tokens=1,
        cost=0.5,
        started_at=20,
        ended_at=21,
    ),
    ev.FinishEvent(run_id="r", seq=15),
]


def test_every_union_member_has_a_sample_and_its_type_literal() -> None:
    assert {type(s) for s in SAMPLES} == set(ALL)
    assert {cls.wire_type for cls in ALL} == set(typing.get_args(ev.EventType))
    for cls in ALL:
        assert cls.model_fields["type"].default == cls.wire_type


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: f"{e.type}-{e.seq}")
def test_wire_round_trip(event: ev._EventBase) -> None:
    wire = event.to_wire()
    assert wire["type"] == event.type
    assert event.model_dump() == wire
    assert json.loads(event.model_dump_json()) == wire
    assert "run_id" not in json.dumps(wire) and "seq" not in wire
    again = ev.event_from_wire(json.loads(json.dumps(wire)), run_id="r", seq=event.seq)
    assert again == event


def test_wire_shapes_follow_mastra_key_order() -> None:
    start = SAMPLES[1].to_wire()["payload"]
    assert list(start) == ["id", "payload", "startedAt", "status"]
    resumed = SAMPLES[2].to_wire()["payload"]
    assert list(resumed) == [
        "id",
        "payload",
        "startedAt",
        "status",
        "suspendPayload",
        "suspendedAt",
        "resumePayload",
        "resumedAt",
    ]
    assert list(SAMPLES[7].to_wire()["payload"]) == ["id", "status", "output", "endedAt"]
    assert list(SAMPLES[8].to_wire()["payload"]) == ["id", "status", "error", "endedAt"]
    delta = SAMPLES[4].to_wire()
    assert list(delta) == ["type", "toolCallId", "toolName", "name", "args", "argsTextDelta"]


def test_events_are_frozen_and_closed() -> None:
    event = SAMPLES[0]
    with pytest.raises(pydantic.ValidationError):
        event.run_id = "other"  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        ev.StartEvent(run_id="r", seq=0, extra="no")  # type: ignore[call-arg]
    with pytest.raises(pydantic.ValidationError):
        ev.event_adapter.validate_python({"type": "unknown", "run_id": "r", "seq": 0})


def test_every_event_declares_its_wire_shape_through_one_mechanism() -> None:
    # No event writes its own serializer or parser: the fields (with their aliases) are the wire.
    source = inspect.getsource(ev)
    assert source.count("    def to_wire(") == 1  # the base's; each class's is generated
    for cls in ALL:
        assert "_serialize" not in vars(cls), cls.__name__
        assert cls.to_wire.__qualname__ == f"{cls.__qualname__}.to_wire"
    wire = SAMPLES[1].to_wire()
    wire["payload"]["status"] = "success"  # a step-start is always "running" on the wire
    with pytest.raises(pydantic.ValidationError):
        ev.event_from_wire(wire, run_id="r", seq=1)


def test_a_sleeps_step_result_and_a_waited_step_start_have_mastras_layouts() -> None:
    slept = ev.StepResultEvent(
        run_id="r",
        seq=3,
        step_id="sleep_1",
        status="success",
        output={"a": 1},
        ended_at=9,
        input_data={"a": 1},
        started_at=5,
    )
    wire = slept.to_wire()
    assert list(wire["payload"]) == ["id", "payload", "startedAt", "endedAt", "status", "output"]
    assert ev.event_from_wire(wire, run_id="r", seq=3) == slept
    woken = ev.StepStartEvent(
        run_id="r",
        seq=4,
        step_id="wait",
        input_data=1,
        started_at=5,
        resume_payload={"ok": True},
        resumed_at=8,
    )
    assert list(woken.to_wire()["payload"]) == [
        "id",
        "payload",
        "startedAt",
        "status",
        "resumePayload",
        "resumedAt",
    ]


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: f"{e.type}-{e.seq}")
def test_the_engines_constructor_builds_what_the_validating_one_does(
    event: ev._EventBase,
) -> None:
    # The fields the sample was given, by name, exactly as the engine passes them.
    given = {name: getattr(event, name) for name in event.model_fields_set}
    built = type(event)._build(**given)
    assert built == event
    assert list(built.__dict__.items()) == list(event.__dict__.items())  # the same order
    assert built.model_fields_set == event.model_fields_set
    assert built.to_wire() == event.to_wire()
    assert built.model_dump_json() == event.model_dump_json()
    with pytest.raises(pydantic.ValidationError):
        built.seq = 99  # type: ignore[misc]  # still frozen


def test_events_from_steps_and_models_are_still_validated_on_the_engines_path() -> None:
    for cls in ev.STEP_EMITTABLE:
        assert cls._build is cls
    with pytest.raises(pydantic.ValidationError):
        ev.ToolCallEvent._build(run_id="r", seq=1, tool_call_id=None, tool_name="t", args={})
    trusted = {cls for cls in ALL if cls._build is not cls}
    assert trusted == set(ALL) - ev.STEP_EMITTABLE
    # A default made by a factory is fresh for each event, as pydantic makes it.
    one = ev.StepFinishEvent._build(run_id="r", seq=1, step_id="s")
    two = ev.StepFinishEvent._build(run_id="r", seq=2, step_id="s")
    assert one.metadata == {} and one.metadata is not two.metadata
    # The fields set is shared by events given the same fields; a copy never changes it.
    assert one.model_fields_set is two.model_fields_set
    copied = one.model_copy(update={"metadata": {"k": 1}})
    assert copied.model_fields_set == {"run_id", "seq", "step_id", "metadata"}
    assert one.model_fields_set == {"run_id", "seq", "step_id"} == two.model_fields_set


def test_the_engines_constructor_takes_fields_named_as_its_own_generated_names() -> None:
    # The generated code's own names (the class, object.__new__, the fields set...) must not
    # be shadowed by a field of the same name: an event's fields are its wire's keys.
    class Probe(ev._EventBase):
        wire_type: typing.ClassVar[str] = "probe"
        type: typing.Literal["probe"] = "probe"
        cls: str
        new: str
        given: int
        put: int = 0
        make_put: int = 1

    fields: dict[str, typing.Any] = {"cls": "c", "new": "n", "given": 2, "make_put": 5}
    built = Probe._build(run_id="r", seq=0, **fields)
    validated = Probe(run_id="r", seq=0, **fields)
    assert built == validated and list(built.__dict__) == list(validated.__dict__)
    assert built.model_fields_set == validated.model_fields_set
    assert built.to_wire() == validated.to_wire()
