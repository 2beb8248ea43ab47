"""The engine: one execution (a start or a resume) of a run over a committed workflow.

The graph is walked node by node. A step's lifecycle is always the same: ``step-start``
(with ``before_step_run``), its body (the step's function, a nested workflow or a foreach
fan-out) inside the ``wrap_step_run`` managers, then either ``step-result`` + ``step-finish``
or ``step-suspended``. Failures become data (a failed outcome), never exceptions out of the
run; only cancellation and strict-mode plugin errors propagate.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from ._dispatch import Dispatcher
from ._ledger import Ledger
from ._lifecycle import _CANCELED, StepLifecycle
from ._scope import Cursor, Outcome, ResumeRequest, Scope, StartBarrier, failed
from .context import RuntimeContext
from .errors import (
    InputValidationError,
    RunClaimedError,
    StepExecutionError,
    StorageError,
    describe_error,
)
from .events import (
    FinishEvent,
    StartEvent,
)
from .graph import (
    BranchNode,
    Condition,
    LoopNode,
    Node,
    ParallelNode,
    StepNode,
)
from .plugin_manager import current_error_collector
from .result import RunState, WorkflowResult
from .steps import Step

if TYPE_CHECKING:
    from .executor import StepExecutor
    from .workflow import Workflow

log = logging.getLogger("stepstream")


class Execution(StepLifecycle):
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
        self.waiters: dict[str, list[asyncio.Future[Any]]] = {}
        """The steps waiting in place for an event (a run in memory), by event name."""
        self.completed_before: set[tuple[int, str]] = set()
        self.result: WorkflowResult | None = None
        """The result, once known (also when the execution was canceled from outside)."""
        self.entered = False
        """Whether the execution has reached the point from which a cancel ends it with its
        events (``run.cancel()`` waits for it rather than killing a task that never ran)."""
        self.executors: dict[Step[Any, Any], StepExecutor] = {}
        """The executor chosen for each step that asked ``make_step_executor``."""
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
            usage=self.state.meta.get("usage"),
        )
        self.result = result
        self.d.notify("after_workflow_run", run_id=self.run_id, workflow_id=wf.id, result=result)
        # The end is stored and `finish` sent even if a cancel arrives meanwhile.
        external_cancel = await self._close(result, cancel_requested) or external_cancel
        if external_cancel:
            raise asyncio.CancelledError
        return self.result  # failed instead, if its end could not be stored

    async def _close(self, result: WorkflowResult, cancel_requested: Callable[[], bool]) -> bool:
        """Send `finish` (not for a suspension), store the end in the same checkpoint and wait
        for it; return whether a cancel from outside arrived meanwhile."""
        persist = self.d.persist
        if persist is not None and persist.abandoned:
            return False  # the process is stopping: the run stays as stored (interrupted)
        # (step, may it run again after a cancel): storing may (it is idempotent); the
        # `finish` emit may not, since a cancel during its backpressure wait comes after the
        # event was already dispatched.
        steps: list[tuple[Callable[[], Awaitable[Any]], bool]] = []
        if result.status != "suspended":
            steps.append((lambda: self.d.emit(FinishEvent), False))
        if persist is not None:
            steps.append((lambda: self._store_end(result), True))
        outside = False
        for step, again in steps:
            for _ in range(2 if again else 1):
                try:
                    await step()
                    break
                except asyncio.CancelledError:
                    self.d.holding = False
                    outside = outside or not cancel_requested()
        return outside

    async def _store_end(self, result: WorkflowResult) -> None:
        """Store the run's end and let it go; a storage failure makes the result failed."""
        persist = self.d.persist
        assert persist is not None
        try:
            persist.set_context(self.runtime_context.to_dict())
            persist.set_meta(self.state.meta)
            persist.finish(result)
            await persist.commit(wait=True)
        except (StorageError, RunClaimedError) as exc:
            log.error("stepstream: run %s ended %s but could not be stored: %s",
                      self.run_id, result.status, exc)  # fmt: skip
            self.result = dataclasses.replace(
                result, status="failed", result=None, error=describe_error(exc)
            )

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
