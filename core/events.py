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

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_serializer

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

StepStatus = Literal["success", "failed", "canceled"]


class _EventBase(BaseModel):
    """Fields and behaviour shared by every event; not part of the union."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    wire_type: ClassVar[str]

    run_id: str
    seq: int

    def to_wire(self) -> dict[str, Any]:
        """Return the event as Mastra's JSON object (camelCase keys, Mastra's key order)."""
        raise NotImplementedError

    @model_serializer
    def _serialize(self) -> dict[str, Any]:
        return self.to_wire()


class StartEvent(_EventBase):
    """The run starts: always the first event of a run (``seq`` 0), exactly once."""

    wire_type: ClassVar[str] = "start"
    type: Literal["start"] = "start"

    def to_wire(self) -> dict[str, Any]:
        return {"type": "start", "payload": {"runId": self.run_id}}


class FinishEvent(_EventBase):
    """The run ended (success, failed or canceled): always the last event, exactly once."""

    wire_type: ClassVar[str] = "finish"
    type: Literal["finish"] = "finish"

    def to_wire(self) -> dict[str, Any]:
        return {"type": "finish", "payload": {"runId": self.run_id}}


class StepStartEvent(_EventBase):
    """A step starts; a resumed step also carries its suspend and resume fields."""

    wire_type: ClassVar[str] = "step-start"
    type: Literal["step-start"] = "step-start"
    step_id: str
    input_data: Any
    started_at: int
    suspend_payload: Any = None
    suspended_at: int | None = None
    resume_payload: Any = None
    resumed_at: int | None = None

    def to_wire(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "id": self.step_id,
            "payload": self.input_data,
            "startedAt": self.started_at,
            "status": "running",
        }
        if self.resumed_at is not None:
            if self.suspended_at is not None:  # not for a wait for an event that came
                payload["suspendPayload"] = self.suspend_payload
                payload["suspendedAt"] = self.suspended_at
            payload["resumePayload"] = self.resume_payload
            payload["resumedAt"] = self.resumed_at
        return {"type": "step-start", "payload": payload}


class StepWaitingEvent(_EventBase):
    """A sleep step begins (``sleep()`` / ``sleep_until()``), in place of its ``step-start``,
    as in Mastra; its ``step-result`` and ``step-finish`` follow when it wakes. A
    ``wait_for_event`` step that waits in place opens with it too; its ``step-start`` comes
    with the event (carrying ``resumePayload`` and ``resumedAt``)."""

    wire_type: ClassVar[str] = "step-waiting"
    type: Literal["step-waiting"] = "step-waiting"
    step_id: str
    input_data: Any
    started_at: int

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": "step-waiting",
            "payload": {
                "id": self.step_id,
                "payload": self.input_data,
                "startedAt": self.started_at,
                "status": "waiting",
            },
        }


class StepResultEvent(_EventBase):
    """A step ended: ``output`` on success, ``error`` (``"Type: message"``) otherwise.

    A sleep's also carries its input and start (``started_at`` is set), in Mastra's order:
    ``{id, payload, startedAt, endedAt, status, output}``.
    """

    wire_type: ClassVar[str] = "step-result"
    type: Literal["step-result"] = "step-result"
    step_id: str
    status: StepStatus
    output: Any = None
    error: str | None = None
    ended_at: int
    input_data: Any = None
    started_at: int | None = None

    def to_wire(self) -> dict[str, Any]:
        if self.started_at is not None:
            slept: dict[str, Any] = {
                "id": self.step_id,
                "payload": self.input_data,
                "startedAt": self.started_at,
                "endedAt": self.ended_at,
                "status": self.status,
            }
            if self.status == "success":
                slept["output"] = self.output
            else:
                slept["error"] = self.error
            return {"type": "step-result", "payload": slept}
        payload: dict[str, Any] = {"id": self.step_id, "status": self.status}
        if self.status == "success":
            payload["output"] = self.output
        else:
            payload["error"] = self.error
        payload["endedAt"] = self.ended_at
        return {"type": "step-result", "payload": payload}


class StepSuspendedEvent(_EventBase):
    """A step suspended itself with ``ctx.suspend(payload)``; no ``step-finish`` follows."""

    wire_type: ClassVar[str] = "step-suspended"
    type: Literal["step-suspended"] = "step-suspended"
    step_id: str
    suspend_payload: Any
    suspended_at: int

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": "step-suspended",
            "payload": {
                "id": self.step_id,
                "status": "suspended",
                "suspendPayload": self.suspend_payload,
                "suspendedAt": self.suspended_at,
            },
        }


class StepFinishEvent(_EventBase):
    """Closes a step after its ``step-result`` (also a failed one); ``metadata`` is ``{}``."""

    wire_type: ClassVar[str] = "step-finish"
    type: Literal["step-finish"] = "step-finish"
    step_id: str
    metadata: dict[str, Any] = Field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        return {"type": "step-finish", "payload": {"id": self.step_id, "metadata": self.metadata}}


class ToolCallStreamingStartEvent(_EventBase):
    """An agent step starts streaming its answer (one per agent step, after ``step-start``).

    ``name`` is Mastra's field (the agent's name); ``tool_call_id`` and ``tool_name`` are the
    seed page's, so consumers written against either work. ``args`` is the step's input.
    """

    wire_type: ClassVar[str] = "tool-call-streaming-start"
    type: Literal["tool-call-streaming-start"] = "tool-call-streaming-start"
    tool_call_id: str
    tool_name: str
    name: str
    args: Any

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": "tool-call-streaming-start",
            "toolCallId": self.tool_call_id,
            "toolName": self.tool_name,
            "name": self.name,
            "args": self.args,
        }


class ToolCallDeltaEvent(_EventBase):
    """One text chunk of an agent step's answer, in order; the deltas concatenated are the text."""

    wire_type: ClassVar[str] = "tool-call-delta"
    type: Literal["tool-call-delta"] = "tool-call-delta"
    tool_call_id: str
    tool_name: str
    name: str
    args: Any
    args_text_delta: str

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": "tool-call-delta",
            "toolCallId": self.tool_call_id,
            "toolName": self.tool_name,
            "name": self.name,
            "args": self.args,
            "argsTextDelta": self.args_text_delta,
        }


class ToolCallEvent(_EventBase):
    """An agent's model calls a tool (arguments complete)."""

    wire_type: ClassVar[str] = "tool-call"
    type: Literal["tool-call"] = "tool-call"
    tool_call_id: str
    tool_name: str
    args: Any

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": "tool-call",
            "toolCallId": self.tool_call_id,
            "toolName": self.tool_name,
            "args": self.args,
        }


class ToolResultEvent(_EventBase):
    """A tool called by an agent's model returned ``result``."""

    wire_type: ClassVar[str] = "tool-result"
    type: Literal["tool-result"] = "tool-result"
    tool_call_id: str
    tool_name: str
    args: Any
    result: Any

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": "tool-result",
            "toolCallId": self.tool_call_id,
            "toolName": self.tool_name,
            "args": self.args,
            "result": self.result,
        }


class ErrorEvent(_EventBase):
    """A model error inside an agent step, forwarded as Mastra does (``error`` is its body)."""

    wire_type: ClassVar[str] = "error"
    type: Literal["error"] = "error"
    error: Any

    def to_wire(self) -> dict[str, Any]:
        return {"type": "error", "error": self.error}


class StepOutputEvent(_EventBase):
    """Data a running step wrote to the stream with ``ctx.write(data)`` (stepstream's own)."""

    wire_type: ClassVar[str] = "step-output"
    type: Literal["step-output"] = "step-output"
    step_id: str
    output: Any

    def to_wire(self) -> dict[str, Any]:
        return {"type": "step-output", "payload": {"id": self.step_id, "output": self.output}}


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
    step_id: str
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

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": "step-usage",
            "payload": {
                "id": self.step_id,
                "model": self.model,
                "responseModel": self.response_model,
                "provider": self.provider,
                "finishReason": self.finish_reason,
                "inputTokens": self.input_tokens,
                "outputTokens": self.output_tokens,
                "totalTokens": self.total_tokens,
                "cachedInputTokens": self.cached_input_tokens,
                "reasoningTokens": self.reasoning_tokens,
                "cost": self.cost,
                "startedAt": self.started_at,
                "endedAt": self.ended_at,
            },
        }


class PluginErrorEvent(_EventBase):
    """A plugin's hook raised while the run went on (stepstream's own); the run is unaffected."""

    wire_type: ClassVar[str] = "plugin-error"
    type: Literal["plugin-error"] = "plugin-error"
    plugin: str
    hook: str
    error: str

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": "plugin-error",
            "payload": {"plugin": self.plugin, "hook": self.hook, "error": self.error},
        }


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

event_adapter: TypeAdapter[Event] = TypeAdapter(Event)
"""Validates an event from its Python form (snake_case keys with ``type``)."""

_CAMEL = {
    "runId": "run_id",
    "id": "step_id",
    "payload": "input_data",
    "startedAt": "started_at",
    "endedAt": "ended_at",
    "suspendPayload": "suspend_payload",
    "suspendedAt": "suspended_at",
    "resumePayload": "resume_payload",
    "resumedAt": "resumed_at",
    "toolCallId": "tool_call_id",
    "toolName": "tool_name",
    "argsTextDelta": "args_text_delta",
    "responseModel": "response_model",
    "finishReason": "finish_reason",
    "inputTokens": "input_tokens",
    "outputTokens": "output_tokens",
    "totalTokens": "total_tokens",
    "cachedInputTokens": "cached_input_tokens",
    "reasoningTokens": "reasoning_tokens",
}


def event_from_wire(wire: dict[str, Any], *, run_id: str, seq: int) -> Event:
    """Rebuild a typed event from its wire JSON (for storage, HTTP clients and tests)."""
    fields: dict[str, Any] = {"type": wire["type"], "run_id": run_id, "seq": seq}
    body = wire.get("payload")
    items: dict[str, Any]
    if wire["type"] in {"start", "finish"}:
        items = {}
    elif isinstance(body, dict):
        items = dict(body)
    else:
        items = {k: v for k, v in wire.items() if k != "type"}
    if wire["type"] in {"step-suspended", "step-start", "step-waiting"}:
        items.pop("status", None)
    for key, value in items.items():
        fields[_CAMEL.get(key, key)] = value
    return event_adapter.validate_python(fields)
