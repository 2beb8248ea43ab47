"""The stream's events: a closed, frozen, discriminated union on ``type``.

Each event is an immutable pydantic model with snake_case attributes. ``to_wire()`` (and so
``model_dump()`` / ``model_dump_json()``) gives Mastra's JSON shape with camelCase keys in
Mastra's key order, as recorded in ``tests/conformance/traces``. Beside its wire fields every
event carries ``run_id`` and ``seq``, the per-run sequence number (0 for ``start``), which never
appear on the wire: they let a consumer resume watching a run where it left off.

Mastra's types: ``start``, ``step-start``, ``step-waiting`` (a sleep, or a wait for an
event, begins), ``tool-call-streaming-start``, ``tool-call-delta``, ``tool-call``,
``tool-result``, ``step-result``, ``step-suspended``, ``step-finish``,
``finish`` and ``error`` (a model error forwarded by an agent step). stepstream adds three:
``step-output`` (data a step writes with ``ctx.write()``), ``step-usage`` (the token usage of
one model response of an agent step, right after that response's last delta and tool calls)
and ``plugin-error`` (a plugin's hook raised; the run went on).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_serializer

from .status import StepEndStatus

__all__ = [
    "STEP_EMITTABLE",
    "ErrorEvent",
    "Event",
    "EventType",
    "FinishEvent",
    "PluginErrorEvent",
    "StartEvent",
    "StepFinishEvent",
    "StepOutputEvent",
    "StepResultEvent",
    "StepStartEvent",
    "StepSuspendedEvent",
    "StepUsageEvent",
    "StepWaitingEvent",
    "ToolCallDeltaEvent",
    "ToolCallEvent",
    "ToolCallStreamingStartEvent",
    "ToolResultEvent",
    "event_adapter",
    "event_from_wire",
]

StepStatus = StepEndStatus
"""How a step ended, as a ``step-result`` says (:data:`stepstream.status.StepEndStatus`)."""


def _compile_to_wire(cls: type[_EventBase]) -> Callable[[Any], dict[str, Any]]:
    """Generate an event class's ``to_wire`` from its declaration, once per class.

    A generated dict display (as :mod:`dataclasses` generates ``__init__``) costs half of a loop
    over the plan, and ``to_wire`` runs for every event a stream, a log or a store writes.
    """
    namespace: dict[str, Any] = {}
    fields = {key: name for name, key in cls._wire_plan}
    plain = [f"{key!r}: self.{name}" for name, key in cls._wire_plan if key not in cls.wire_when]
    if len(plain) == len(cls._wire_plan) and not cls.wire_layouts:
        body = "{" + ", ".join(plain) + "}"
        if cls.wire_nest:
            shape = f"{{'type': {cls.wire_type!r}, 'payload': {body}}}"
        else:
            shape = "{" + ", ".join([f"'type': {cls.wire_type!r}", *plain]) + "}"
        lines = ["def to_wire(self):", f"    return {shape}"]
    else:  # conditional keys or layouts: build the body key by key, in the layout's order
        assert cls.wire_nest, "conditional keys and layouts are only declared under a payload"
        lines = ["def to_wire(self):"]
        layouts = [(f"layout_{i}", keys) for i, (_, keys) in enumerate(cls.wire_layouts)]
        for i, (test, _) in enumerate(cls.wire_layouts):
            namespace[f"layout_{i}"] = test
        for test_name, keys in [*layouts, (None, tuple(fields))]:
            indent = "    "
            if test_name is not None:
                lines.append(f"    if {test_name}(self):")
                indent = "        "
            lines.append(f"{indent}body = {{}}")
            for key in keys:
                name = fields[key]
                if key in cls.wire_when:
                    namespace[f"when_{name}"] = cls.wire_when[key]
                    lines.append(f"{indent}if when_{name}(self):")
                    lines.append(f"{indent}    body[{key!r}] = self.{name}")
                else:
                    lines.append(f"{indent}body[{key!r}] = self.{name}")
            lines.append(f"{indent}return {{'type': {cls.wire_type!r}, 'payload': body}}")
    exec("\n".join(lines), namespace)
    to_wire: Callable[[Any], dict[str, Any]] = namespace["to_wire"]
    return to_wire


_UNSET: Any = object()


def _compile_build(cls: type[_EventBase]) -> Callable[..., Any]:
    """Generate an event class's trusted constructor from its fields, once per class.

    The engine builds its own events (``start``, ``step-start``...) from values it made
    itself, for every step of every run: this constructor fills the instance as pydantic's
    validating one would (the same ``__dict__`` in field order, the same fields set) without
    validating, at about half the cost. Keyword arguments only, as the validating one.

    The fields-set is one set per combination of optional fields given, shared by the
    events built with it (about 200 bytes less per event kept): a frozen event never adds to
    it, and pydantic copies it for ``model_copy``.
    """
    # The generated names start with "_", as no field's can (pydantic keeps those private):
    # a field named ``new`` or ``given`` cannot shadow them.
    namespace: dict[str, Any] = {
        "_cls": cls,
        "_new": object.__new__,
        "_put": object.__setattr__,
        "_shared": {},
        "_UNSET": _UNSET,
    }
    params, entries, optional = [], [], []
    bits: dict[str, int] = {}
    for name, field in cls.model_fields.items():
        if name == "type":
            entries.append(f"'type': {cls.wire_type!r}")
            continue
        entries.append(f"{name!r}: {name}")
        if field.is_required():
            params.append(name)
            continue
        params.append(f"{name}=_UNSET")
        if field.default_factory is not None:
            namespace[f"_make_{name}"] = field.default_factory
            fallback = f"_make_{name}()"
        else:
            namespace[f"_default_{name}"] = field.default
            fallback = f"_default_{name}"
        bits[name] = 1 << len(bits)
        optional.append(
            f"    if {name} is _UNSET:\n        {name} = {fallback}\n"
            f"    else:\n        _mask |= {bits[name]}"
        )
    required = {name for name, field in cls.model_fields.items() if field.is_required()}

    def fields_set(mask: int) -> set[str]:
        given = required | {name for name, bit in bits.items() if mask & bit}
        namespace["_shared"][mask] = given
        return given

    namespace["_fields_set"] = fields_set
    lines = [
        f"def build(*, {', '.join(params)}):",
        "    _mask = 0",
        *optional,
        "    _given = _shared.get(_mask) or _fields_set(_mask)",
        "    _self = _new(_cls)",
        f"    _put(_self, '__dict__', {{{', '.join(entries)}}})",
        "    _put(_self, '__pydantic_fields_set__', _given)",
        "    _put(_self, '__pydantic_extra__', None)",
        "    _put(_self, '__pydantic_private__', None)",
        "    return _self",
    ]
    exec("\n".join(lines), namespace)
    build: Callable[..., Any] = namespace["build"]
    return build


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


class _EventBase(BaseModel):
    """Fields and behaviour shared by every event; not part of the union.

    An event declares its wire shape and nothing else: its fields, in Mastra's key order, are
    the wire's keys (camelCase aliases, or ``Field(alias=...)`` where Mastra's name differs);
    ``wire_nest`` says whether they sit under ``payload`` (most events) or beside ``type``
    (the agent's tool events); ``run_id`` and ``seq`` stay off the wire unless listed in
    ``wire_also``; ``wire_when`` maps a conditional key (Mastra leaves some out) to the test
    that keeps it; ``wire_layouts`` gives another key order for the events a test picks (a
    sleep's ``step-result`` orders its keys as Mastra does). One serializer, generated once
    per class from that declaration, and one parser (:func:`event_from_wire`) serve all the
    events.
    """

    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=_camel, populate_by_name=True
    )
    wire_type: ClassVar[str]
    wire_nest: ClassVar[bool] = True
    wire_also: ClassVar[tuple[str, ...]] = ()
    _wire_plan: ClassVar[tuple[tuple[str, str], ...]] = ()
    wire_when: ClassVar[dict[str, Callable[[Any], bool]]] = {}
    wire_layouts: ClassVar[tuple[tuple[Callable[[Any], bool], tuple[str, ...]], ...]] = ()

    run_id: str
    seq: int

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        hidden = {"run_id", "seq", "type"} - set(cls.wire_also)
        plan = [
            (name, field.alias or name)
            for name, field in cls.model_fields.items()
            if name not in hidden
        ]
        # ``run_id`` leads where it is on the wire (``start``/``finish``: ``{runId}``).
        cls._wire_plan = tuple(sorted(plan, key=lambda item: item[0] != "run_id"))
        generated = _compile_to_wire(cls)
        generated.__doc__ = _EventBase.to_wire.__doc__
        generated.__qualname__ = f"{cls.__qualname__}.to_wire"
        cls.to_wire = generated  # type: ignore[method-assign,assignment]
        cls._build = _compile_build(cls)

    _build: ClassVar[Callable[..., Any]]
    """The constructor the engine builds this event with (see :func:`_compile_build`):
    trusted for the events it makes from its own values, the validating one (set at the end
    of this module) for those whose fields come from steps and agents
    (:data:`STEP_EMITTABLE`)."""

    def to_wire(self) -> dict[str, Any]:
        """Return the event as Mastra's JSON object (camelCase keys, Mastra's key order)."""
        raise NotImplementedError  # each event class gets its own, generated at definition

    @model_serializer
    def _serialize(self) -> dict[str, Any]:
        return self.to_wire()


class StartEvent(_EventBase):
    """The run starts: always the first event of a run (``seq`` 0), exactly once."""

    wire_type: ClassVar[str] = "start"
    wire_also: ClassVar[tuple[str, ...]] = ("run_id",)
    type: Literal["start"] = "start"


class FinishEvent(_EventBase):
    """The run ended (success, failed or canceled): always the last event, exactly once."""

    wire_type: ClassVar[str] = "finish"
    wire_also: ClassVar[tuple[str, ...]] = ("run_id",)
    type: Literal["finish"] = "finish"


class StepStartEvent(_EventBase):
    """A step starts; a resumed step also carries its suspend and resume fields."""

    wire_type: ClassVar[str] = "step-start"
    type: Literal["step-start"] = "step-start"
    step_id: str = Field(alias="id")
    input_data: Any = Field(alias="payload")
    started_at: int
    status: Literal["running"] = "running"
    suspend_payload: Any = None
    suspended_at: int | None = None
    resume_payload: Any = None
    resumed_at: int | None = None

    wire_when: ClassVar[dict[str, Callable[[Any], bool]]] = {
        **dict.fromkeys(("resumePayload", "resumedAt"), lambda event: event.resumed_at is not None),
        # Not for a wait for an event that came: that step was never suspended.
        **dict.fromkeys(
            ("suspendPayload", "suspendedAt"),
            lambda event: event.resumed_at is not None and event.suspended_at is not None,
        ),
    }


class StepWaitingEvent(_EventBase):
    """A sleep step begins (``sleep()`` / ``sleep_until()``), in place of its ``step-start``,
    as in Mastra; its ``step-result`` and ``step-finish`` follow when it wakes. A
    ``wait_for_event`` step that waits in place opens with it too; its ``step-start`` comes
    with the event (carrying ``resumePayload`` and ``resumedAt``)."""

    wire_type: ClassVar[str] = "step-waiting"
    type: Literal["step-waiting"] = "step-waiting"
    step_id: str = Field(alias="id")
    input_data: Any = Field(alias="payload")
    started_at: int
    status: Literal["waiting"] = "waiting"


class StepResultEvent(_EventBase):
    """A step ended: ``output`` on success, ``error`` (``"Type: message"``) otherwise.

    A sleep's also carries its input and start (``started_at`` is set), in Mastra's order:
    ``{id, payload, startedAt, endedAt, status, output}``.
    """

    wire_type: ClassVar[str] = "step-result"
    type: Literal["step-result"] = "step-result"
    step_id: str = Field(alias="id")
    status: StepStatus
    output: Any = None
    error: str | None = None
    ended_at: int
    input_data: Any = Field(default=None, alias="payload")
    started_at: int | None = None

    wire_when: ClassVar[dict[str, Callable[[Any], bool]]] = {
        "output": lambda event: event.status == "success",
        "error": lambda event: event.status != "success",
        "payload": lambda event: event.started_at is not None,
        "startedAt": lambda event: event.started_at is not None,
    }
    wire_layouts: ClassVar[tuple[tuple[Callable[[Any], bool], tuple[str, ...]], ...]] = (
        (
            lambda event: event.started_at is not None,
            ("id", "payload", "startedAt", "endedAt", "status", "output", "error"),
        ),
    )


class StepSuspendedEvent(_EventBase):
    """A step suspended itself with ``ctx.suspend(payload)``; no ``step-finish`` follows."""

    wire_type: ClassVar[str] = "step-suspended"
    type: Literal["step-suspended"] = "step-suspended"
    step_id: str = Field(alias="id")
    status: Literal["suspended"] = "suspended"
    suspend_payload: Any
    suspended_at: int


class StepFinishEvent(_EventBase):
    """Closes a step after its ``step-result`` (also a failed one); ``metadata`` is ``{}``."""

    wire_type: ClassVar[str] = "step-finish"
    type: Literal["step-finish"] = "step-finish"
    step_id: str = Field(alias="id")
    metadata: dict[str, Any] = Field(default_factory=dict)


class ToolCallStreamingStartEvent(_EventBase):
    """An agent step starts streaming its answer (one per agent step, after ``step-start``).

    ``name`` is Mastra's field (the agent's name); ``tool_call_id`` and ``tool_name`` are the
    seed page's, so consumers written against either work. ``args`` is the step's input.
    """

    wire_type: ClassVar[str] = "tool-call-streaming-start"
    wire_nest: ClassVar[bool] = False
    type: Literal["tool-call-streaming-start"] = "tool-call-streaming-start"
    tool_call_id: str
    tool_name: str
    name: str
    args: Any


class ToolCallDeltaEvent(_EventBase):
    """One text chunk of an agent step's answer, in order; the deltas concatenated are the text."""

    wire_type: ClassVar[str] = "tool-call-delta"
    wire_nest: ClassVar[bool] = False
    type: Literal["tool-call-delta"] = "tool-call-delta"
    tool_call_id: str
    tool_name: str
    name: str
    args: Any
    args_text_delta: str


class ToolCallEvent(_EventBase):
    """An agent's model calls a tool (arguments complete)."""

    wire_type: ClassVar[str] = "tool-call"
    wire_nest: ClassVar[bool] = False
    type: Literal["tool-call"] = "tool-call"
    tool_call_id: str
    tool_name: str
    args: Any


class ToolResultEvent(_EventBase):
    """A tool called by an agent's model returned ``result``."""

    wire_type: ClassVar[str] = "tool-result"
    wire_nest: ClassVar[bool] = False
    type: Literal["tool-result"] = "tool-result"
    tool_call_id: str
    tool_name: str
    args: Any
    result: Any


class ErrorEvent(_EventBase):
    """A model error inside an agent step, forwarded as Mastra does (``error`` is its body)."""

    wire_type: ClassVar[str] = "error"
    wire_nest: ClassVar[bool] = False
    type: Literal["error"] = "error"
    error: Any


class StepOutputEvent(_EventBase):
    """Data a running step wrote to the stream with ``ctx.write(data)`` (stepstream's own)."""

    wire_type: ClassVar[str] = "step-output"
    type: Literal["step-output"] = "step-output"
    step_id: str = Field(alias="id")
    output: Any


class StepUsageEvent(_EventBase):
    """The token usage of one model response of an agent step (stepstream's own).

    It follows the response's last ``tool-call-delta`` (and its ``tool-call`` events), one per
    response of the tool loop, so a step's usage is the sum of its ``step-usage`` events. The
    engine emits it when the agent step reports usage (``StepContext.report_usage``); steps
    cannot emit it directly. Wire shape::

        {"type": "step-usage", "payload": {"id", "model", "responseModel", "provider",
         "finishReason", "inputTokens", "outputTokens", "totalTokens", "cachedInputTokens",
         "reasoningTokens", "cost", "startedAt", "endedAt"}}

    ``cost`` is ``null`` when the run has no price for the model; ``startedAt`` is when the
    request was sent, ``endedAt`` when the response ended (ms since the epoch).
    """

    wire_type: ClassVar[str] = "step-usage"
    type: Literal["step-usage"] = "step-usage"
    step_id: str = Field(alias="id")
    model: str
    response_model: str | None = None
    provider: str
    finish_reason: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    cost: float | None = None
    started_at: int
    ended_at: int


class PluginErrorEvent(_EventBase):
    """A plugin's hook raised while the run went on (stepstream's own); the run is unaffected."""

    wire_type: ClassVar[str] = "plugin-error"
    type: Literal["plugin-error"] = "plugin-error"
    plugin: str
    hook: str
    error: str


Event = Annotated[
    StartEvent
    | StepStartEvent
    | StepWaitingEvent
    | ToolCallStreamingStartEvent
    | ToolCallDeltaEvent
    | ToolCallEvent
    | ToolResultEvent
    | StepResultEvent
    | StepSuspendedEvent
    | StepFinishEvent
    | FinishEvent
    | ErrorEvent
    | StepOutputEvent
    | StepUsageEvent
    | PluginErrorEvent,
    Field(discriminator="type"),
]
"""Any stream event; narrow on ``event.type``."""

EventType = Literal[
    "start",
    "step-start",
    "step-waiting",
    "tool-call-streaming-start",
    "tool-call-delta",
    "tool-call",
    "tool-result",
    "step-result",
    "step-suspended",
    "step-finish",
    "finish",
    "error",
    "step-output",
    "step-usage",
    "plugin-error",
]

STEP_EMITTABLE: frozenset[type[_EventBase]] = frozenset(
    {
        ToolCallStreamingStartEvent,
        ToolCallDeltaEvent,
        ToolCallEvent,
        ToolResultEvent,
        ErrorEvent,
        StepOutputEvent,
        StepUsageEvent,
    }
)
"""The events a running step may emit itself (``StepContext.emit``)."""

for _cls in STEP_EMITTABLE:  # their fields come from steps and models: always validated
    _cls._build = _cls

event_adapter: TypeAdapter[Event] = TypeAdapter(Event)
"""Validates an event from its Python form (snake_case keys with ``type``)."""


def event_from_wire(wire: dict[str, Any], *, run_id: str, seq: int) -> Event:
    """Rebuild a typed event from its wire JSON (for storage, HTTP clients and tests).

    The wire keys are the events' declared aliases, so the parse needs no map of its own.
    """
    body = wire.get("payload")
    fields = dict(body) if isinstance(body, dict) and wire["type"] not in _TOP_LEVEL else {}
    if wire["type"] in _TOP_LEVEL:
        fields = {k: v for k, v in wire.items() if k != "type"}
    fields.update(type=wire["type"], runId=run_id, seq=seq)
    return event_adapter.validate_python(fields)


_TOP_LEVEL = frozenset(cls.wire_type for cls in _EventBase.__subclasses__() if not cls.wire_nest)
