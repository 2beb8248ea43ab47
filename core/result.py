"""Run state: per-step records and the :class:`WorkflowResult` a run ends with."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from .status import RunStatus, StepStatus

if TYPE_CHECKING:
    from .step_like import StepLike

OutputT = TypeVar("OutputT")

StepRecordStatus = StepStatus
"""A step record's status (the name this module always gave it)."""

__all__ = [
    "PluginErrorInfo",
    "RunState",
    "RunStatus",
    "StepRecord",
    "StepRecordStatus",
    "WorkflowResult",
    "now_ms",
    "steps_wire",
]


def now_ms() -> int:
    """Milliseconds since the epoch, as Mastra's ``*At`` fields."""
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class StepRecord:
    """What the state keeps of one step (the last execution of it, for loops).

    ``error_detail`` (the traceback) stays out of the wire form.
    """

    payload: Any
    started_at: int
    status: StepRecordStatus = "running"
    output: Any = None
    error: str | None = None
    error_detail: str | None = None
    ended_at: int | None = None
    suspend_payload: Any = None
    suspended_at: int | None = None
    resume_payload: Any = None
    resumed_at: int | None = None
    attempts: int = 0
    """How many times the step's function was called in its last execution (retries)."""
    usage: dict[str, Any] | None = None
    """The model usage of its last execution (:meth:`stepstream.usage.Usage.to_json`): an
    agent step's responses summed, a nested workflow's steps summed; ``None`` when it used no
    model. Never on the wire (Mastra's step records have no such field)."""

    def to_dict(self) -> dict[str, Any]:
        """Every field by name, shallowly (its stored form; the values are JSON data)."""
        return {name: getattr(self, name) for name in self.__slots__}

    def to_wire(self) -> dict[str, Any]:
        """Mastra's step record: ``{payload, startedAt, status, ..., output|error, endedAt}``."""
        wire: dict[str, Any] = {
            "payload": self.payload,
            "startedAt": self.started_at,
            "status": self.status,
        }
        if self.suspended_at is not None:
            wire["suspendPayload"] = self.suspend_payload
            wire["suspendedAt"] = self.suspended_at
        if self.resumed_at is not None:
            wire["resumePayload"] = self.resume_payload
            wire["resumedAt"] = self.resumed_at
        if self.status == "success":
            wire["output"] = self.output
        elif self.status in ("failed", "canceled"):
            wire["error"] = self.error
        if self.ended_at is not None and self.status != "suspended":
            wire["endedAt"] = self.ended_at
        return wire


def steps_wire(input_data: Any, records: dict[str, StepRecord]) -> dict[str, Any]:
    """Mastra's ``steps`` map: ``input`` first, then each record in completion order."""
    steps: dict[str, Any] = {"input": input_data}
    for step_id, record in records.items():
        steps[step_id] = record.to_wire()
    return steps


@dataclass
class PluginErrorInfo:
    """A plugin's hook raised during the run (the run went on)."""

    plugin: str
    hook: str
    error: str


@dataclass(frozen=True)
class WorkflowResult:
    """The state of a run when an execution of it ended; Mastra's ``getWorkflowState()``.

    :ivar status: ``success``, ``failed``, ``suspended`` or ``canceled``.
    :ivar result: The last step's output (JSON form) on success.
    :ivar error: ``"<ExceptionType>: <message>"`` when failed or canceled.
    :ivar error_detail: The traceback of the error, never on the wire.
    :ivar suspended: The suspended steps' id paths (``[["approve"]]``).
    :ivar steps: Records of the top-level steps, in completion order.
    :ivar input: The workflow's input data, as given.
    :ivar plugin_errors: Hooks that raised during the run (isolated, the run went on).
    :ivar usage: The model usage of the whole run so far, all executions and nested
        workflows included (:meth:`stepstream.usage.Usage.to_json`), ``None`` when no model
        was used; per step in ``steps[id].usage``. Never on the wire.
    """

    run_id: str
    status: RunStatus
    input: Any
    steps: dict[str, StepRecord]
    result: Any = None
    error: str | None = None
    error_detail: str | None = None
    suspended: list[list[str]] = field(default_factory=list)
    plugin_errors: list[PluginErrorInfo] = field(default_factory=list)
    usage: dict[str, Any] | None = None

    def output_of(self, step: StepLike[OutputT]) -> OutputT | None:
        """The output of one of the run's top-level steps, typed as the step declares it (an
        instance of its output schema when it has one), or ``None`` if it has not succeeded.

        ``result.steps[step.id].output`` is the same output in its JSON form.
        """
        record = self.steps.get(step.id)
        if record is None or record.status != "success":
            return None
        parsed: OutputT = step.parse_output(record.output)
        return parsed

    def to_wire(self) -> dict[str, Any]:
        """Mastra's ``getWorkflowState()`` object (see ``conformance/traces/*.state.json``)."""
        wire: dict[str, Any] = {"status": self.status, "steps": steps_wire(self.input, self.steps)}
        if self.status == "success":
            wire["result"] = self.result
        elif self.status in ("failed", "canceled"):
            wire["error"] = self.error
        elif self.status == "suspended":
            wire["suspended"] = [list(p) for p in self.suspended]
        return wire


@dataclass(slots=True)
class RunState:
    """The mutable state of one (possibly nested) workflow's execution, kept across resumes."""

    input: Any = None
    steps: dict[str, StepRecord] = field(default_factory=dict)
    nested: dict[str, RunState] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    """Run-level data kept with a durable run (JSON-able; the root state's is stored)."""

    def snapshot_steps(self) -> dict[str, StepRecord]:
        """Copies of the records, in completion order."""
        return {k: dataclasses.replace(v) for k, v in self.steps.items()}

    def to_json(self) -> dict[str, Any]:
        """The whole state, nested workflows' included, as JSON-able data (for storage)."""
        return {
            "input": self.input,
            # Shallow copies: the values are already JSON data (asdict would deep-copy them
            # at every checkpoint, a cost growing with the run's length).
            "steps": {k: v.to_dict() for k, v in self.steps.items()},
            "nested": {k: v.to_json() for k, v in self.nested.items()},
            "meta": self.meta,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunState:
        """Rebuild a state saved with :meth:`to_json`."""
        return cls(
            input=data.get("input"),
            steps={k: StepRecord(**v) for k, v in data.get("steps", {}).items()},
            nested={k: cls.from_json(v) for k, v in data.get("nested", {}).items()},
            meta=dict(data.get("meta") or {}),
        )
