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
import time
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel

from .._dispatch import Dispatcher
from .._ledger import Ledger
from .._scope import (
    Cursor,
    Outcome,
    ResumeRequest,
    Scope,
    StartBarrier,
    StepRef,
    failed,
    resolve_path,
)
from ..context import Bail, RuntimeContext, StepContext, Suspend
from ..errors import (
    InputValidationError,
    RunClaimedError,
    RunStateError,
    StepExecutionError,
    StorageError,
    describe_error,
)
from ..events import (
    StartEvent,
    StepFinishEvent,
    StepResultEvent,
    StepStartEvent,
    StepSuspendedEvent,
    StepWaitingEvent,
)
from ..graph import (
    BranchNode,
    Condition,
    EventStep,
    ForeachNode,
    LoopNode,
    MapStep,
    Node,
    ParallelNode,
    SleepStep,
    StepNode,
    WorkflowGraph,
    as_workflow,
)
from ..plugin_manager import current_error_collector
from ..result import RunState, StepRecord, WorkflowResult, now_ms
from ..steps import Step, to_jsonable
from .calling import StepCaller
from .decision import decide_step
from .ending import end_run
from .waiting import EventWaiters

CANCELED = "RunCanceledError: the run was canceled"
"""The error of a canceled run and of the steps it canceled."""


class Execution:
    """Runs a workflow once (start) or from its suspended steps (resume)."""

    def __init__(
        self,
        *,
        workflow: WorkflowGraph,
        state: RunState,
        dispatcher: Dispatcher,
        runtime_context: RuntimeContext,
        resume: ResumeRequest | None = None,
        is_canceled: Callable[[], bool] = lambda: False,
        events: dict[str, Any] | None = None,
    ) -> None:
        self.workflow = workflow
        self.state = state
        self.d = dispatcher
        self.run_id = dispatcher.run_id
        self.runtime_context = runtime_context
        self.resume = resume
        self.resumed = False
        self.is_canceled = is_canceled
        self.events = events if events is not None else {}
        """Events sent with ``run.send_event()`` before their ``wait_for_event`` was reached."""
        self.carried: tuple[str, ...] | None = None
        """The resumed step's path while a loop hands the resumption to its later iterations."""
        self.waiters = EventWaiters(self.run_id, self.events)
        """The steps waiting in place for an event (a run in memory)."""
        self.completed_before: set[tuple[int, str]] = set()
        self.result: WorkflowResult | None = None
        """The result, once known (also when the execution was canceled from outside)."""
        self.entered = False
        """Whether the execution has reached the point from which a cancel ends it with its
        events (``run.cancel()`` waits for it rather than killing a task that never ran)."""
        self.caller = StepCaller(self.run_id, dispatcher)
        self.run_counts: dict[str, int] = {}
        """How many times each step (by stream id) ran in this execution (``ctx.run_count``)."""
        self.ledger = Ledger(self.run_id, state, workflow.prices, workflow.budget)
        if resume is not None:
            self._collect_completed(state)

    async def checkpoint(self) -> bool:
        """Hand the step boundary's state to storage (durable runs), waiting for it only when
        the storage asks for ``durability="sync"``; return whether a cancel arrived meanwhile.

        :raises StorageError: if the runtime context cannot be stored, or storing failed.
        """
        persist = self.d.persist
        if persist is None:
            return False
        persist.set_context(self.runtime_context.to_dict())
        persist.set_meta(self.state.meta)
        try:
            await persist.commit()
        except asyncio.CancelledError:
            return True
        return False

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
            meta=self.state.meta,
        )
        if self.d.persist is not None:  # what plugins put there goes with the first write
            self.d.persist.set_meta(self.state.meta)
        root = Scope(wf, self.state, self)
        external_cancel = False
        self.entered = True
        try:
            if self.resume is None:
                await self.d.emit(StartEvent)
            if cancel_requested():  # canceled before its first step: it ends at once
                raise asyncio.CancelledError
            try:
                wf.parse_input(self.state.input)
            except InputValidationError as exc:
                exc.args = (f"workflow {wf.id!r} input is invalid: {exc}",)
                outcome = failed(exc)
            else:
                outcome = await self.run_nodes(
                    root, wf.nodes, Cursor(self.state.input, wf.input_schema)
                )
        except asyncio.CancelledError:
            # Canceled by run.cancel(), or from outside (a caller's timeout): either way the
            # run ends canceled, with its result and ``finish``; an outside cancel propagates.
            external_cancel = not cancel_requested()
            self.d.holding = False
            outcome = Outcome("canceled", error=CANCELED)
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
            usage=self.state.meta.get("usage"),
        )
        self.result = result
        self.result, outside = await end_run(
            self.d,
            wf.id,
            result,
            runtime_context=self.runtime_context,
            meta=self.state.meta,
            cancel_requested=cancel_requested,
        )
        if external_cancel or outside:
            raise asyncio.CancelledError
        return self.result  # failed instead, if its end could not be stored

    async def run_nodes(self, scope: Scope, nodes: Sequence[Node], cursor: Cursor) -> Outcome:
        """Run nodes in sequence, each on the previous one's output."""
        outcome = Outcome("success", cursor.value, cursor.schema)
        for node in nodes:
            outcome = await self.run_node(scope, node, cursor)
            if outcome.status != "success" or outcome.bailed:
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
            for index, (condition, s) in enumerate(node.branches):
                try:
                    if await self._check(scope, condition, cursor):
                        chosen.append(s)
                except Exception as exc:
                    where = f"the condition of branch {index} (step {s.id!r})"
                    return failed(self._condition_error(where, exc))
            return await self._together(scope, chosen, cursor)
        if isinstance(node, LoopNode):
            return await self._loop(scope, node, cursor)
        return await self.run_step(scope, node.step, cursor, foreach=node)

    async def _together(
        self, scope: Scope, steps: Sequence[Step[Any, Any]], cursor: Cursor
    ) -> Outcome:
        # As in Mastra, every branch's step-start comes first, in declaration order.
        starts = StartBarrier(len(steps))
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
        # As Mastra's engine does, a resumption that goes through the loop's step is handed
        # to every iteration of it in this execution, not only to the suspended one.
        target = self.resume.path if self.resume is not None else None
        path = (*scope.path, node.step.id)
        through = target is not None and target[: len(path)] == path
        outer = self.carried
        try:
            while True:
                outcome = await self.run_step(scope, node.step, cursor)
                if through:
                    self.carried = target
                if outcome.status != "success" or outcome.skipped or outcome.bailed:
                    return outcome
                cursor = Cursor(outcome.output, outcome.schema)
                try:
                    holds = await self._check(scope, node.condition, cursor)
                except Exception as exc:
                    kind = "dountil" if node.until else "dowhile"
                    where = f"the {kind} condition of step {node.step.id!r}"
                    return failed(self._condition_error(where, exc))
                if holds == node.until:
                    return outcome
        finally:
            self.carried = outer

    def _condition_error(self, where: str, exc: Exception) -> StepExecutionError:
        error = StepExecutionError(
            f"{where} raised {describe_error(exc)}", run_id=self.run_id, step_id=""
        )
        error.__cause__ = exc
        return error

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
        starts: StartBarrier | None = None,
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
        starts: StartBarrier | None,
    ) -> Outcome:
        sid = scope.prefix + step.id
        path = (*scope.path, step.id)
        record = scope.state.steps.get(step.id)
        key = (id(scope.state), step.id)
        decision = decide_step(
            path,
            record.status if record is not None else None,
            completed_before=key in self.completed_before,
            resuming=self.resume is not None,
            target=self.resume.path if self.resume is not None else None,
            resumed=self.resumed,
            carried=self.carried,
        )
        if decision.action == "replay":
            assert record is not None
            self.completed_before.discard(key)
            return Outcome("success", record.output, step.output_schema, skipped=True)
        if decision.action == "stay-suspended":
            return Outcome("suspended", suspended=[list(path)])
        if decision.action == "run":  # else its record goes on (a sleep keeps its start)
            record = StepRecord(payload=cursor.value, started_at=now_ms())
        assert record is not None
        record.status = "running"
        self.resumed = self.resumed or decision.resumes_target
        resuming = decision.resume_data
        if resuming:
            record.resume_payload, record.resumed_at = self.resume_payload(), now_ms()

        canceled = False
        try:
            resumed = (
                {
                    "suspend_payload": record.suspend_payload,
                    "suspended_at": record.suspended_at,
                    "resume_payload": record.resume_payload,
                    "resumed_at": record.resumed_at,
                }
                if resuming
                else {}
            )
            # Mastra opens a sleep, and a wait for an event, with `step-waiting`; any other
            # step with `step-start` (the waiting step's comes when its event does).
            waiting = isinstance(step, SleepStep) or self._waits_in_place(step, resuming)
            await self.d.emit(
                StepWaitingEvent if waiting else StepStartEvent,
                step_id=sid,
                input_data=record.payload,
                started_at=record.started_at,
                **({} if waiting else resumed),
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
            outcome = Outcome("canceled", error=CANCELED)
        except Bail as signal:
            try:
                output = step.dump_output(signal.payload)
            except Exception as exc:  # the result does not match the output schema
                outcome = failed(exc)
                self.d.notify("on_step_error", run_id=self.run_id, step_id=sid, error=exc)
            else:
                outcome = Outcome("success", output, step.output_schema, bailed=True)
        except Suspend as signal:
            try:
                outcome = self._suspend(step, path, signal.payload)
            except Exception as exc:  # the payload does not match the suspend schema
                outcome = failed(exc)
                self.d.notify("on_step_error", run_id=self.run_id, step_id=sid, error=exc)
        except Exception as exc:
            outcome = failed(exc)
            self.d.notify("on_step_error", run_id=self.run_id, step_id=sid, error=exc)
        # A step that started always ends with its events, even while the run is canceled.
        ended, outcome = await self._finish_step(scope, step, sid, record, outcome)
        canceled = ended or canceled
        if self.d.persist is not None:  # durable runs only: no work on the in-memory path
            try:
                canceled = await self.checkpoint() or canceled
            except (StorageError, RunClaimedError) as exc:  # storing failed: the run cannot go on
                return failed(exc)
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
        if foreach is not None:  # before nesting: a foreach over a workflow runs it per item
            return await self._foreach(scope, foreach, sid, record.payload)
        if step.is_workflow:
            nested = as_workflow(step)
            assert nested is not None
            return await self._nested(scope, nested, sid, path, record.payload, resuming)
        resume_data = step.parse_resume(record.resume_payload) if resuming else None
        if isinstance(step, EventStep):
            if self._waits_in_place(step, resuming):
                data = await self.waiters.wait(step, sid, path, record)
                record.resume_payload, record.resumed_at = to_jsonable(data), now_ms()
                await self.d.emit(
                    StepStartEvent,
                    step_id=sid,
                    input_data=record.payload,
                    started_at=record.started_at,
                    resume_payload=record.resume_payload,
                    resumed_at=record.resumed_at,
                )
                resume_data, resuming = step.parse_resume(data), True
            elif not resuming and step.event in self.events:  # sent before it was reached
                resume_data = step.parse_resume(self.events.pop(step.event))
                resuming = True
            elif resuming and step.late(record.started_at, now_ms()):
                raise step.timed_out(self.run_id, sid)  # a durable run's event came too late
            if resuming:  # the event came (its data may be None): run the wrapped step
                step = step.inner
        # A map function sees the previous output typed; a step, its own input schema.
        typed = cursor.typed() if isinstance(step, MapStep) else step.parse_input(record.payload)
        ctx = self._context(scope, sid, typed, resume_data, record.suspend_payload)
        ctx.run_count = self.run_counts[sid] = self.run_counts.get(sid, -1) + 1
        if isinstance(step, SleepStep):
            await self._sleep(scope, step, ctx, record)
            return Outcome("success", record.payload, cursor.schema)
        output = await self.caller.call(step, ctx, record)
        return Outcome("success", step.dump_output(output), step.output_schema)

    def _waits_in_place(self, step: Step[Any, Any], resuming: bool) -> bool:
        """Whether ``step`` waits here for its event, as in Mastra: in a run kept in memory.
        A durable run suspends at the step instead, so that any process may continue it."""
        return isinstance(step, EventStep) and not resuming and self.d.persist is None

    def wake(self, event: str, data: Any) -> bool:
        """Give ``data`` to the steps waiting here for ``event``; return whether any was."""
        return self.waiters.wake(event, data)

    def wake_step(self, step: StepRef | None, data: Any) -> bool:
        """Give ``data`` to the step ``step`` names if it waits here for its event (a
        ``resume()`` of it, as ``send_event`` would); return whether it did."""
        waiting = self.waiters.paths()
        if not waiting:
            return False
        try:
            path = resolve_path(step, waiting, self.run_id)
        except RunStateError:  # it names another step: that one is not waiting here
            return False
        return self.waiters.wake_at(path, data)

    async def _sleep(
        self, scope: Scope, step: SleepStep, ctx: StepContext[Any], record: StepRecord
    ) -> None:
        # The start is stored before sleeping, so a recovered run sleeps only what is left.
        scope.put(step.id, record)
        if await self.checkpoint():
            raise asyncio.CancelledError
        if self.d.persist is not None:  # a sleep is long: wait until its start is stored
            await self.d.persist.commit(wait=True)
        delay = await step.wake_at(ctx, record.started_at) - time.time()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _finish_step(
        self, scope: Scope, step: Step[Any, Any], sid: str, record: StepRecord, outcome: Outcome
    ) -> tuple[bool, Outcome]:
        """Record the step's end and emit its closing events; return whether a cancellation
        arrived while they were waiting on backpressure (they are all sent regardless), and
        the outcome (failed instead, in a durable run, if the step's data cannot be stored)."""
        ended = now_ms()
        # A resumed step's record keeps the usage of its executions before the suspension.
        record.usage = self.ledger.take(sid, record.usage)
        if outcome.status == "suspended":
            record.status = "suspended"
            if not step.is_workflow or record.suspended_at is None:
                record.suspend_payload, record.suspended_at = outcome.output, ended
            try:
                scope.put(step.id, record)
            except StorageError as exc:  # the suspend payload cannot be stored: fail instead
                record.suspend_payload = record.suspended_at = None
                outcome = failed(exc)
            else:
                self.d.notify(
                    "after_step_run",
                    run_id=self.run_id,
                    step_id=sid,
                    status="suspended",
                    output=None,
                )
                try:
                    await self.d.emit(
                        StepSuspendedEvent,
                        step_id=sid,
                        suspend_payload=record.suspend_payload,
                        suspended_at=record.suspended_at,
                    )
                except asyncio.CancelledError:
                    return True, outcome
                return False, outcome
        record.status, record.ended_at = outcome.status, ended
        if outcome.status == "success":
            record.output = outcome.output
        else:
            record.error, record.error_detail = outcome.error, outcome.error_detail
        try:
            scope.put(step.id, record)
        except StorageError as exc:  # its output cannot be stored: the step fails instead
            self.d.notify("on_step_error", run_id=self.run_id, step_id=sid, error=exc)
            outcome = failed(exc)
            record.status, record.output = "failed", None
            record.error, record.error_detail = outcome.error, outcome.error_detail
            try:
                scope.put(step.id, record)
            except StorageError:  # its input cannot be stored either (it never can be shown)
                record.payload = None
                scope.put(step.id, record)
        self.d.notify(
            "after_step_run",
            run_id=self.run_id,
            step_id=sid,
            status=record.status,
            output=record.output,
        )
        # A sleep's step-result also says what it slept on and since when, as Mastra's does.
        slept = (
            {"input_data": record.payload, "started_at": record.started_at}
            if isinstance(step, SleepStep)
            else {}
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
                **slept,
            )
        except asyncio.CancelledError:
            canceled = True
        try:
            await self.d.emit(StepFinishEvent, step_id=sid)
        except asyncio.CancelledError:
            canceled = True
        return canceled, outcome

    async def _nested(
        self,
        scope: Scope,
        wf: WorkflowGraph,
        sid: str,
        path: tuple[str, ...],
        input_data: Any,
        resuming: bool,
    ) -> Outcome:
        state = scope.state.nested.get(wf.id)
        recovering = self.resume is not None and self.resume.path is None
        if state is None or not (resuming or recovering):
            if self.d.persist is not None:
                self.d.persist.restart_nested(path, input_data)
            state = scope.state.nested[wf.id] = RunState(input=input_data)
        wf.parse_input(input_data)
        child = Scope(wf, state, self, prefix=sid + ".", path=path)
        outcome = await self.run_nodes(child, wf.nodes, Cursor(input_data, wf.input_schema))
        if outcome.status == "success":
            return Outcome("success", outcome.output)
        if outcome.status == "suspended":
            waiting = [r for r in state.steps.values() if r.status == "suspended"]
            inner = waiting[0].suspend_payload if waiting else None
            # As in Mastra: the inner payload, with where the suspension is inside this workflow.
            meta = {"runId": self.run_id, "path": list(outcome.suspended[0][len(path) :])}
            payload = {**(inner if isinstance(inner, dict) else {}), "__workflow_meta": meta}
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

        nested = as_workflow(step)

        async def one(index: int, item: Any) -> None:
            async with gate:
                if nested is not None:
                    results[index] = await self._nested_item(scope, nested, sid, index, item)
                    return
                ctx = self._context(scope, sid, step.parse_input(item))
                try:
                    output = await self.caller.call(step, ctx, StepRecord(item, now_ms()))
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

    async def _nested_item(
        self, scope: Scope, wf: WorkflowGraph, sid: str, index: int, item: Any
    ) -> Any:
        """Run the nested workflow of a foreach on one item (its steps stream as
        ``<foreach id>.<step id>``); return its output.

        :raises StepExecutionError: if it fails or suspends on that item.
        """
        wf.parse_input(item)
        child = _ItemScope(wf, RunState(input=item), self, prefix=sid + ".", path=scope.path)
        outcome = await self.run_nodes(child, wf.nodes, Cursor(item, wf.input_schema))
        if outcome.status == "success":
            return outcome.output
        what = "suspended, which cannot be resumed per item" if outcome.suspended else "failed"
        raise StepExecutionError(
            f"foreach step {wf.id!r}: item {index} {what}: {outcome.error}"
            if outcome.error
            else f"foreach step {wf.id!r}: item {index} {what}",
            run_id=self.run_id,
            step_id=sid,
        )

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


class _ItemScope(Scope):
    """The scope of one foreach item's nested workflow: its records stay in memory (the
    items run side by side; a recovered run runs the whole foreach again)."""

    def put(self, step_id: str, record: StepRecord) -> None:
        self.state.steps[step_id] = record
