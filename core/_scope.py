"""What the engine's walk works with: the data between nodes, how a node ended, the
workflow scope a step runs in (also its :class:`~stepstream.context.StepServices`)."""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

from .errors import RunStateError, describe_error
from .events import StepOutputEvent, StepUsageEvent
from .graph import WorkflowGraph, node_steps
from .result import RunState, StepRecord
from .status import StepOutcome
from .steps import Step, unwrap

if TYPE_CHECKING:
    from ._dispatch import Dispatcher
    from ._ledger import Ledger
    from .plugin_manager import PluginManager
    from .step_like import StepLike

OutcomeStatus = StepOutcome
StepRef = str | Step[Any, Any] | Sequence[str | Step[Any, Any]]
"""A step named for resuming: its id, the step itself, or its id path (nested steps)."""


@dataclass(slots=True)
class Cursor:
    """The data flowing between nodes, with the schema of the step that produced it."""

    value: Any
    schema: type[BaseModel] | None = None

    def typed(self) -> Any:
        """The value as an instance of its producer's schema (for conditions and maps)."""
        return (
            unwrap(self.schema.model_validate(self.value))
            if self.schema is not None
            else self.value
        )


@dataclass(slots=True)
class Outcome:
    """How a node ended."""

    status: OutcomeStatus
    output: Any = None
    schema: type[BaseModel] | None = None
    error: str | None = None
    error_detail: str | None = None
    suspended: list[list[str]] = field(default_factory=list)
    skipped: bool = False
    bailed: bool = False
    """A step called ``ctx.bail()``: its workflow ends here with this output."""


class Engine(Protocol):
    """What a scope needs of the execution it belongs to (the engine's
    :class:`~stepstream._execution.Execution`, which is built on this module)."""

    @property
    def d(self) -> Dispatcher:
        """The run's dispatcher (events, hooks, persistence)."""
        ...

    @property
    def ledger(self) -> Ledger:
        """The run's usage ledger (prices and budget)."""
        ...

    def is_canceled(self) -> bool:
        """Whether the run has been canceled."""
        ...


@dataclass(slots=True)
class Scope:
    """One (possibly nested) workflow being executed: its state and its place in the stream.

    It is also the :class:`~stepstream.context.StepServices` behind its steps' contexts.
    """

    workflow: WorkflowGraph
    state: RunState
    execution: Engine
    prefix: str = ""
    path: tuple[str, ...] = ()

    def put(self, step_id: str, record: StepRecord) -> None:
        """Keep ``record`` as the step's in the state (and, in a durable run, for the next
        checkpoint).

        :raises StorageError: in a durable run, if the record cannot be stored as JSON (the
            state is left as it was).
        """
        persist = self.execution.d.persist
        if persist is not None:
            persist.put((*self.path, step_id), record)
        self.state.steps[step_id] = record

    def find_step(self, ref: str | Step[Any, Any]) -> Step[Any, Any] | None:
        step_id = ref if isinstance(ref, str) else ref.id
        for node in self.workflow.nodes:
            for s in node_steps(node):
                if s.id == step_id:
                    return s
        return None

    def lookup(self, ref: str | StepLike[Any]) -> Any:
        step_id = ref if isinstance(ref, str) else ref.id
        record = self.state.steps.get(step_id)
        if record is None or record.status != "success":
            return None
        found = self.find_step(ref) if isinstance(ref, str) else ref
        return found.parse_output(record.output) if found is not None else record.output

    def results(self) -> dict[str, Any]:
        return {
            step_id: self.lookup(step_id)
            for step_id, record in self.state.steps.items()
            if record.status == "success"
        }

    def init_data(self) -> Any:
        schema = self.workflow.input_schema
        data = self.state.input
        return unwrap(schema.model_validate(data)) if schema is not None else data

    async def write(self, step_id: str, data: Any) -> None:
        if isinstance(data, BaseModel):
            data = data.model_dump(mode="json", by_alias=True)
        await self.execution.d.emit(StepOutputEvent, step_id=step_id, output=data)

    def is_canceled(self) -> bool:
        return self.execution.is_canceled()

    async def emit(self, cls: type[Any], fields: dict[str, Any]) -> Any:
        if cls is StepUsageEvent:
            return await self._usage(fields)
        return await self.execution.d.emit(cls, **fields)

    async def _usage(self, fields: dict[str, Any]) -> Any:
        # Priced and counted on the step and the nested workflows around it (their stream ids
        # are the prefixes of this scope's path), shown, then held against the budget.
        ledger = self.execution.ledger
        fields = ledger.price(fields)
        outer = [".".join(self.path[:k]) for k in range(len(self.path), 0, -1)]
        ledger.add([fields["step_id"], *outer], fields)
        event = await self.execution.d.emit(StepUsageEvent, **fields)
        ledger.check(fields["step_id"], fields)
        return event

    @property
    def plugin_manager(self) -> PluginManager:
        return self.execution.d.decisions  # the run's one route to decision hooks


@dataclass(frozen=True)
class ResumeRequest:
    """Which suspended step to resume (its id path) and with what data; a ``path`` of
    ``None`` recovers an interrupted run: completed steps are skipped, the rest run again."""

    path: tuple[str, ...] | None
    data: Any


class StartBarrier:
    """Lets concurrent steps run their bodies only once all of them have started."""

    def __init__(self, count: int) -> None:
        self.waiting = count
        self.arrived: set[str] = set()
        self.all_started = asyncio.Event()
        if count == 0:
            self.all_started.set()

    def arrive(self, step_id: str) -> None:
        if step_id not in self.arrived:
            self.arrived.add(step_id)
            if len(self.arrived) >= self.waiting:
                self.all_started.set()


def failed(exc: BaseException) -> Outcome:
    detail = "".join(traceback.format_exception(exc))
    return Outcome("failed", error=describe_error(exc), error_detail=detail)


def resolve_path(step: StepRef | None, suspended: list[list[str]], run_id: str) -> tuple[str, ...]:
    """The suspended path ``step`` names (the only one when ``step`` is ``None``)."""
    if step is None:
        if len(suspended) != 1:
            raise RunStateError(
                f"run {run_id} has {len(suspended)} suspended steps {suspended}; name one",
                run_id=run_id,
            )
        return tuple(suspended[0])
    if isinstance(step, Step):
        wanted: tuple[str, ...] = (step.id,)
    elif isinstance(step, str):
        wanted = (step,)
    else:  # a path: step or workflow objects, ids, or a mix
        wanted = tuple(s.id if isinstance(s, Step) else s for s in step)
    for path in suspended:
        if tuple(path) == wanted or tuple(path[-len(wanted) :]) == wanted:
            return tuple(path)
    raise RunStateError(
        f"This workflow step was not suspended: run {run_id}: step {'.'.join(wanted)!r} is "
        f"not suspended (suspended: {suspended})",
        run_id=run_id,
    )
