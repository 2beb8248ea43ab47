"""The engine: one execution (a start or a resume) of a run over a committed workflow.

The graph is walked node by node. A step's lifecycle is always the same: ``step-start``
(with ``before_step_run``), its body (the step's function, a nested workflow or a foreach
fan-out) inside the ``wrap_step_run`` managers, then either ``step-result`` + ``step-finish``
or ``step-suspended``. Failures become data (a failed outcome), never exceptions out of the
run; only cancellation and strict-mode plugin errors propagate.
"""

from __future__ import annotations

import asyncio
import inspect
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from ._dispatch import Dispatcher
from .context import RuntimeContext, StepContext, Suspend
from .errors import InputValidationError, StepExecutionError, describe_error
from .events import (
    FinishEvent,
    StartEvent,
    StepFinishEvent,
    StepOutputEvent,
    StepResultEvent,
    StepStartEvent,
    StepSuspendedEvent,
)
from .graph import (
    BranchNode,
    Condition,
    ForeachNode,
    LoopNode,
    MapStep,
    Node,
    ParallelNode,
    StepNode,
    as_workflow,
    node_steps,
)
from .plugin_manager import PluginManager, current_error_collector
from .result import RunState, StepRecord, WorkflowResult, now_ms
from .steps import Step

if TYPE_CHECKING:
    from .workflow import Workflow

OutcomeStatus = Literal["success", "failed", "suspended", "canceled"]
_CANCELED = "RunCanceledError: the run was canceled"


@dataclass
class Cursor:
    """The data flowing between nodes, with the schema of the step that produced it."""

    value: Any
    schema: type[BaseModel] | None = None

    def typed(self) -> Any:
        """The value as an instance of its producer's schema (for conditions and maps)."""
        return self.schema.model_validate(self.value) if self.schema is not None else self.value


@dataclass
class Outcome:
    """How a node ended."""

    status: OutcomeStatus
    output: Any = None
    schema: type[BaseModel] | None = None
    error: str | None = None
    error_detail: str | None = None
    suspended: list[list[str]] = field(default_factory=list)
    skipped: bool = False


@dataclass
class Scope:
    """One (possibly nested) workflow being executed: its state and its place in the stream.

    It is also the :class:`~stepstream.context.StepServices` behind its steps' contexts.
    """

    workflow: Workflow
    state: RunState
    execution: Execution
    prefix: str = ""
    path: tuple[str, ...] = ()

    def find_step(self, ref: str | Step[Any, Any]) -> Step[Any, Any] | None:
        step_id = ref if isinstance(ref, str) else ref.id
        for node in self.workflow.nodes:
            for s in node_steps(node):
                if s.id == step_id:
                    return s
        return None

    def lookup(self, ref: str | Step[Any, Any]) -> Any:
        step_id = ref if isinstance(ref, str) else ref.id
        record = self.state.steps.get(step_id)
        if record is None or record.status != "success":
            return None
        found = ref if isinstance(ref, Step) else self.find_step(ref)
        return found.parse_output(record.output) if found is not None else record.output

    def init_data(self) -> Any:
        schema = self.workflow.input_schema
        data = self.state.input
        return schema.model_validate(data) if schema is not None else data

    async def write(self, step_id: str, data: Any) -> None:
        if isinstance(data, BaseModel):
            data = data.model_dump(mode="json", by_alias=True)
        await self.execution.d.emit(StepOutputEvent, step_id=step_id, output=data)

    def is_canceled(self) -> bool:
        return self.execution.is_canceled()

    async def emit(self, cls: type[Any], fields: dict[str, Any]) -> Any:
        return await self.execution.d.emit(cls, **fields)

    @property
    def plugin_manager(self) -> PluginManager:
        return self.execution.d.pm


@dataclass(frozen=True)
class ResumeRequest:
    """Which suspended step to resume (its id path) and with what data."""

    path: tuple[str, ...]
    data: Any


class Execution:
    """Runs a workflow once (start) or from its suspended steps (resume)."""

    def __init__(
        self,
        *,
        workflow: Workflow,
        state: RunState,
        dispatcher: Dispatcher,
        runtime_context: RuntimeContext,
        resume: ResumeRequest | None = None,
        is_canceled: Callable[[], bool] = lambda: False,
    ) -> None:
        self.workflow = workflow
        self.state = state
        self.d = dispatcher
        self.run_id = dispatcher.run_id
        self.runtime_context = runtime_context
        self.resume = resume
        self.resumed = False
        self.is_canceled = is_canceled
        self.completed_before: set[tuple[int, str]] = set()
        self.result: WorkflowResult | None = None
        """The result, once known (also when the execution was canceled from outside)."""
        if resume is not None:
            self._collect_completed(state)

    def _collect_completed(self, state: RunState) -> None:
        for step_id, record in state.steps.items():
            if record.status == "success":
                self.completed_before.add((id(state), step_id))
        for nested in state.nested.values():
            self._collect_completed(nested)

    # -- the run ------------------------------------------------------------------------------

    async def execute(self, *, cancel_requested: Callable[[], bool]) -> WorkflowResult:
        """Run to success, failure, suspension or cancellation and return the result."""
        token = current_error_collector.set(self.d.pending_errors)
        try:
            return await self._execute(cancel_requested)
        finally:
            current_error_collector.reset(token)

    async def _execute(self, cancel_requested: Callable[[], bool]) -> WorkflowResult:
        wf = self.workflow
        self.d.notify(
            "before_workflow_run",
            run_id=self.run_id,
            workflow_id=wf.id,
            input_data=self.state.input,
        )
        root = Scope(wf, self.state, self)
        external_cancel = False
        try:
            if self.resume is None:
                await self.d.emit(StartEvent)
            try:
                wf.parse_input(self.state.input)
            except InputValidationError as exc:
                exc.args = (f"workflow {wf.id!r} input is invalid: {exc}",)
                outcome = _failed(exc)
            else:
                outcome = await self.run_nodes(
                    root, wf.nodes, Cursor(self.state.input, wf.input_schema)
                )
        except asyncio.CancelledError:
            # Canceled by run.cancel(), or from outside (a caller's timeout): either way the
            # run ends canceled, with its result and ``finish``; an outside cancel propagates.
            external_cancel = not cancel_requested()
            self.d.holding = False
            outcome = Outcome("canceled", error=_CANCELED)
        result = WorkflowResult(
            run_id=self.run_id,
            status=outcome.status,
            input=self.state.input,
            # Only a suspended run's records change again (on resume): copy those alone.
            steps=(
                self.state.snapshot_steps()
                if outcome.status == "suspended"
                else dict(self.state.steps)
            ),
            result=outcome.output if outcome.status == "success" else None,
            error=outcome.error,
            error_detail=outcome.error_detail,
            suspended=outcome.suspended,
            plugin_errors=self.d.plugin_errors,
        )
        self.result = result
        self.d.notify("after_workflow_run", run_id=self.run_id, workflow_id=wf.id, result=result)
        if result.status != "suspended":
            await self.d.emit(FinishEvent)
        if external_cancel:
            raise asyncio.CancelledError
        return result

    async def run_nodes(self, scope: Scope, nodes: Sequence[Node], cursor: Cursor) -> Outcome:
        """Run nodes in sequence, each on the previous one's output."""
        outcome = Outcome("success", cursor.value, cursor.schema)
        for node in nodes:
            outcome = await self.run_node(scope, node, cursor)
            if outcome.status != "success":
                return outcome
            cursor = Cursor(outcome.output, outcome.schema)
        return outcome

    async def run_node(self, scope: Scope, node: Node, cursor: Cursor) -> Outcome:
        if isinstance(node, StepNode):
            return await self.run_step(scope, node.step, cursor)
        if isinstance(node, ParallelNode):
            return await self._together(scope, node.steps, cursor)
        if isinstance(node, BranchNode):
            chosen = []
            for condition, s in node.branches:
                try:
                    if await self._check(scope, condition, cursor):
                        chosen.append(s)
                except Exception as exc:
                    return _failed(exc)
            return await self._together(scope, chosen, cursor)
        if isinstance(node, LoopNode):
            return await self._loop(scope, node, cursor)
        return await self.run_step(scope, node.step, cursor, foreach=node)

    async def _together(
        self, scope: Scope, steps: Sequence[Step[Any, Any]], cursor: Cursor
    ) -> Outcome:
        # As in Mastra, every branch's step-start comes first, in declaration order.
        starts = _StartBarrier(len(steps))
        results = await asyncio.gather(
            *(self.run_step(scope, s, cursor, starts=starts) for s in steps),
            return_exceptions=True,
        )
        outcomes: list[Outcome] = []
        for r in results:
            if isinstance(r, BaseException):
                raise r
            outcomes.append(r)
        for o in outcomes:
            if o.status in ("failed", "canceled"):
                return o
        suspended = [p for o in outcomes for p in o.suspended]
        if suspended:
            return Outcome("suspended", suspended=suspended)
        return Outcome("success", {s.id: o.output for s, o in zip(steps, outcomes, strict=True)})

    async def _loop(self, scope: Scope, node: LoopNode, cursor: Cursor) -> Outcome:
        while True:
            outcome = await self.run_step(scope, node.step, cursor)
            if outcome.status != "success" or outcome.skipped:
                return outcome
            cursor = Cursor(outcome.output, outcome.schema)
            try:
                holds = await self._check(scope, node.condition, cursor)
            except Exception as exc:
                return _failed(exc)
            if holds == node.until:
                return outcome

    async def _check(self, scope: Scope, condition: Condition, cursor: Cursor) -> bool:
        ctx = self._context(scope, "", cursor.typed())
        value = condition(ctx)
        if inspect.isawaitable(value):
            value = await value
        return bool(value)

    # -- one step -----------------------------------------------------------------------------

    async def run_step(
        self,
        scope: Scope,
        step: Step[Any, Any],
        cursor: Cursor,
        *,
        foreach: ForeachNode | None = None,
        starts: _StartBarrier | None = None,
    ) -> Outcome:
        """Run one step through its whole lifecycle of events, hooks and state.

        With ``starts``, the step waits after its step-start until its siblings have started.
        """
        try:
            return await self._run_step(scope, step, cursor, foreach, starts)
        finally:
            if starts is not None:
                starts.arrive(step.id)

    async def _run_step(
        self,
        scope: Scope,
        step: Step[Any, Any],
        cursor: Cursor,
        foreach: ForeachNode | None,
        starts: _StartBarrier | None,
    ) -> Outcome:
        sid = scope.prefix + step.id
        path = (*scope.path, step.id)
        record = scope.state.steps.get(step.id)
        resuming = False
        if self.resume is not None and record is not None:
            key = (id(scope.state), step.id)
            if key in self.completed_before:
                self.completed_before.discard(key)
                return Outcome("success", record.output, step.output_schema, skipped=True)
        if record is not None and record.status == "suspended" and self.resume is not None:
            target = self.resume.path
            if self.resumed or target[: len(path)] != path:
                return Outcome("suspended", suspended=[list(path)])
            resuming = True
            self.resumed = target == path
            record.resume_payload, record.resumed_at = self.resume_payload(), now_ms()
            record.status = "running"
        else:
            record = StepRecord(payload=cursor.value, started_at=now_ms())

        canceled = False
        try:
            if resuming:
                await self.d.emit(
                    StepStartEvent,
                    step_id=sid,
                    input_data=record.payload,
                    started_at=record.started_at,
                    suspend_payload=record.suspend_payload,
                    suspended_at=record.suspended_at,
                    resume_payload=record.resume_payload,
                    resumed_at=record.resumed_at,
                )
            else:
                await self.d.emit(
                    StepStartEvent,
                    step_id=sid,
                    input_data=record.payload,
                    started_at=record.started_at,
                )
            self.d.notify(
                "before_step_run", run_id=self.run_id, step_id=sid, input_data=record.payload
            )
            if starts is not None:
                starts.arrive(step.id)
                await starts.all_started.wait()
            body = self._body(scope, step, sid, path, record, cursor, foreach, resuming)
            if self.d.wraps_steps():
                with self.d.wrap_step(sid, record.payload):
                    outcome = await body
            else:
                outcome = await body
        except asyncio.CancelledError:
            canceled = True
            self.d.holding = False
            outcome = Outcome("canceled", error=_CANCELED)
        except Suspend as signal:
            try:
                outcome = self._suspend(step, path, signal.payload)
            except Exception as exc:  # the payload does not match the suspend schema
                outcome = _failed(exc)
                self.d.notify("on_step_error", run_id=self.run_id, step_id=sid, error=exc)
        except Exception as exc:
            outcome = _failed(exc)
            self.d.notify("on_step_error", run_id=self.run_id, step_id=sid, error=exc)
        # A step that started always ends with its events, even while the run is canceled.
        canceled = await self._finish_step(scope, step, sid, record, outcome) or canceled
        if canceled:
            raise asyncio.CancelledError
        return (
            outcome
            if outcome.status != "suspended"
            else Outcome("suspended", suspended=outcome.suspended)
        )

    def resume_payload(self) -> Any:
        assert self.resume is not None
        data = self.resume.data
        return data.model_dump(mode="json", by_alias=True) if isinstance(data, BaseModel) else data

    def _suspend(self, step: Step[Any, Any], path: tuple[str, ...], payload: Any) -> Outcome:
        return Outcome("suspended", output=step.dump_suspend(payload), suspended=[list(path)])

    async def _body(
        self,
        scope: Scope,
        step: Step[Any, Any],
        sid: str,
        path: tuple[str, ...],
        record: StepRecord,
        cursor: Cursor,
        foreach: ForeachNode | None,
        resuming: bool,
    ) -> Outcome:
        if step.is_workflow:
            nested = as_workflow(step)
            assert nested is not None
            return await self._nested(scope, nested, sid, path, record.payload, resuming)
        if foreach is not None:
            return await self._foreach(scope, foreach, sid, record.payload)
        resume_data = step.parse_resume(record.resume_payload) if resuming else None
        # A map function sees the previous output typed; a step, its own input schema.
        typed = cursor.typed() if isinstance(step, MapStep) else step.parse_input(record.payload)
        ctx = self._context(scope, sid, typed, resume_data, record.suspend_payload)
        if step.is_async:
            output = await step.run(ctx)
        else:
            output = await asyncio.to_thread(step.call_sync, ctx)
        return Outcome("success", step.dump_output(output), step.output_schema)

    async def _finish_step(
        self, scope: Scope, step: Step[Any, Any], sid: str, record: StepRecord, outcome: Outcome
    ) -> bool:
        """Record the step's end and emit its closing events; return whether a cancellation
        arrived while they were waiting on backpressure (they are all sent regardless)."""
        ended = now_ms()
        if outcome.status == "suspended":
            record.status = "suspended"
            if not step.is_workflow or record.suspended_at is None:
                record.suspend_payload, record.suspended_at = outcome.output, ended
            scope.state.steps[step.id] = record
            self.d.notify(
                "after_step_run", run_id=self.run_id, step_id=sid, status="suspended", output=None
            )
            try:
                await self.d.emit(
                    StepSuspendedEvent,
                    step_id=sid,
                    suspend_payload=record.suspend_payload,
                    suspended_at=record.suspended_at,
                )
            except asyncio.CancelledError:
                return True
            return False
        record.status, record.ended_at = outcome.status, ended
        if outcome.status == "success":
            record.output = outcome.output
        else:
            record.error, record.error_detail = outcome.error, outcome.error_detail
        scope.state.steps[step.id] = record
        self.d.notify(
            "after_step_run",
            run_id=self.run_id,
            step_id=sid,
            status=record.status,
            output=record.output,
        )
        canceled = False
        try:
            await self.d.emit(
                StepResultEvent,
                step_id=sid,
                status=outcome.status,
                output=record.output,
                error=record.error,
                ended_at=ended,
            )
        except asyncio.CancelledError:
            canceled = True
        try:
            await self.d.emit(StepFinishEvent, step_id=sid)
        except asyncio.CancelledError:
            canceled = True
        return canceled

    async def _nested(
        self,
        scope: Scope,
        wf: Workflow,
        sid: str,
        path: tuple[str, ...],
        input_data: Any,
        resuming: bool,
    ) -> Outcome:
        state = scope.state.nested.get(wf.id)
        if state is None or not resuming:
            state = scope.state.nested[wf.id] = RunState(input=input_data)
        wf.parse_input(input_data)
        child = Scope(wf, state, self, prefix=sid + ".", path=path)
        outcome = await self.run_nodes(child, wf.nodes, Cursor(input_data, wf.input_schema))
        if outcome.status == "success":
            return Outcome("success", outcome.output)
        if outcome.status == "suspended":
            waiting = [r for r in state.steps.values() if r.status == "suspended"]
            payload = waiting[0].suspend_payload if waiting else None
            return Outcome("suspended", output=payload, suspended=outcome.suspended)
        return outcome

    async def _foreach(self, scope: Scope, node: ForeachNode, sid: str, items: Any) -> Outcome:
        if not isinstance(items, list):
            raise InputValidationError(
                f"foreach step {node.step.id!r} needs a list input, got {type(items).__name__}",
                step_id=node.step.id,
            )
        results: list[Any] = [None] * len(items)
        gate = asyncio.Semaphore(node.concurrency)
        step = node.step

        async def one(index: int, item: Any) -> None:
            async with gate:
                ctx = self._context(scope, sid, step.parse_input(item))
                try:
                    if step.is_async:
                        output = await step.run(ctx)
                    else:
                        output = await asyncio.to_thread(step.call_sync, ctx)
                except Suspend:
                    raise StepExecutionError(
                        f"step {step.id!r} suspended inside foreach, which cannot be resumed "
                        "per item; suspend before or after the foreach",
                        run_id=self.run_id,
                        step_id=sid,
                    ) from None
                results[index] = step.dump_output(output)

        outcomes = await asyncio.gather(
            *(one(i, item) for i, item in enumerate(items)), return_exceptions=True
        )
        for r in outcomes:
            if isinstance(r, BaseException):
                raise r
        return Outcome("success", results)

    # -- step context -------------------------------------------------------------------------

    def _context(
        self,
        scope: Scope,
        sid: str,
        input_data: Any,
        resume_data: Any = None,
        suspend_payload: Any = None,
    ) -> StepContext[Any]:
        return StepContext(
            input_data=input_data,
            runtime_context=self.runtime_context,
            run_id=self.run_id,
            workflow_id=scope.workflow.id,
            step_id=sid,
            services=scope,
            resume_data=resume_data,
            suspend_payload=suspend_payload,
        )


class _StartBarrier:
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


def _failed(exc: BaseException) -> Outcome:
    detail = "".join(traceback.format_exception(exc))
    return Outcome("failed", error=describe_error(exc), error_detail=detail)
