"""One step's lifecycle: step-start, its body (a function, a nested workflow or a foreach
fan-out) inside the ``wrap_step_run`` managers, then step-result + step-finish or
step-suspended; also the resumption of a suspended step."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import tenacity
from pydantic import BaseModel

from ._dispatch import Dispatcher
from ._ledger import Ledger
from ._scope import Cursor, Outcome, ResumeRequest, Scope, StartBarrier, failed
from .context import Bail, RuntimeContext, StepContext, Suspend
from .errors import (
    InputValidationError,
    RunClaimedError,
    StepExecutionError,
    StepTimeoutError,
    StorageError,
)
from .events import (
    StepFinishEvent,
    StepResultEvent,
    StepStartEvent,
    StepSuspendedEvent,
    StepWaitingEvent,
)
from .executor import LocalExecutor, StepExecutor, run_locally
from .graph import EventStep, ForeachNode, MapStep, Node, SleepStep, as_workflow
from .plugin_manager import OPTIONAL_PLUGINS
from .result import RunState, StepRecord, now_ms
from .steps import Step, to_jsonable

if TYPE_CHECKING:
    from .workflow import Workflow

_CANCELED = "RunCanceledError: the run was canceled"


class StepLifecycle:
    """The step-level half of :class:`~stepstream._engine.Execution`."""

    d: Dispatcher
    run_id: str
    runtime_context: RuntimeContext
    resume: ResumeRequest | None
    resumed: bool
    completed_before: set[tuple[int, str]]
    is_canceled: Callable[[], bool]
    events: dict[str, Any]
    carried: tuple[str, ...] | None
    waiters: dict[str, list[asyncio.Future[Any]]]
    executors: dict[Step[Any, Any], StepExecutor]
    ledger: Ledger
    run_counts: dict[str, int]

    async def run_nodes(self, scope: Scope, nodes: Sequence[Node], cursor: Cursor) -> Outcome:
        """Run nodes in sequence (the graph half provides it)."""
        raise NotImplementedError

    async def checkpoint(self) -> bool:
        """Store the run's state at a step boundary (durable runs); return whether a
        cancellation arrived meanwhile (the graph half provides it)."""
        raise NotImplementedError

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
        resuming = False
        if self.resume is not None and record is not None:
            key = (id(scope.state), step.id)
            if key in self.completed_before:
                self.completed_before.discard(key)
                return Outcome("success", record.output, step.output_schema, skipped=True)
        if record is not None and record.status == "suspended" and self.resume is not None:
            target = self.resume.path
            if target is None or self.resumed or target[: len(path)] != path:
                return Outcome("suspended", suspended=[list(path)])
            resuming = True
            self.resumed = target == path
            record.resume_payload, record.resumed_at = self.resume_payload(), now_ms()
            record.status = "running"
        elif (
            record is not None
            and record.status == "running"
            and self.resume is not None
            and self.resume.path is None
        ):
            record.status = "running"  # recovered mid-step: keep its start (a sleep's clock)
        else:
            record = StepRecord(payload=cursor.value, started_at=now_ms())
            if self.carried == path:  # a later iteration of a loop the resumption went through
                resuming = True
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
            outcome = Outcome("canceled", error=_CANCELED)
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
                data = await self._wait_for_event(step, sid, record)
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
        output = await self._call(step, ctx, record)
        return Outcome("success", step.dump_output(output), step.output_schema)

    def _waits_in_place(self, step: Step[Any, Any], resuming: bool) -> bool:
        """Whether ``step`` waits here for its event, as in Mastra: in a run kept in memory.
        A durable run suspends at the step instead, so that any process may continue it."""
        return isinstance(step, EventStep) and not resuming and self.d.persist is None

    async def _wait_for_event(self, step: EventStep, sid: str, record: StepRecord) -> Any:
        """The data of ``step``'s event: kept from before, or when ``run.send_event()`` wakes
        the step (:meth:`wake`).

        :raises StepTimeoutError: if it does not come within the step's timeout.
        """
        if step.event in self.events:
            return self.events.pop(step.event)
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.waiters.setdefault(step.event, []).append(waiter)
        try:
            if step.wait_timeout is None:
                return await waiter
            left = record.started_at / 1000 + step.wait_timeout - time.time()
            try:
                return await asyncio.wait_for(waiter, max(left, 0))
            except TimeoutError:
                raise step.timed_out(self.run_id, sid) from None
        finally:
            others = self.waiters.get(step.event, [])
            if waiter in others:
                others.remove(waiter)
            if not others:
                self.waiters.pop(step.event, None)

    def wake(self, event: str, data: Any) -> bool:
        """Give ``data`` to the steps waiting here for ``event`` (all of them, as Mastra's
        emitter does); return whether any was."""
        woken = [w for w in self.waiters.pop(event, []) if not w.done()]
        for waiter in woken:
            waiter.set_result(data)
        return bool(woken)

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

    async def _call(self, step: Step[Any, Any], ctx: StepContext[Any], record: StepRecord) -> Any:
        """Call the step's function, with its timeout and retries."""
        record.attempts = 0
        if not step.retries and step.timeout is None:
            record.attempts = 1
            return await self._invoke(step, ctx)
        retrying = tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(step.retries + 1),
            wait=tenacity.wait_exponential(multiplier=step.retry_delay, max=30)
            if step.retry_delay
            else tenacity.wait_none(),
            retry=tenacity.retry_if_exception_type(Exception),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                record.attempts += 1
                return await self._attempt(step, ctx)
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def _attempt(self, step: Step[Any, Any], ctx: StepContext[Any]) -> Any:
        call = self._invoke(step, ctx)
        if step.timeout is None:
            return await call
        try:
            return await asyncio.wait_for(call, step.timeout)
        except TimeoutError:
            raise StepTimeoutError(
                f"step {step.id!r} took longer than its timeout of {step.timeout:g}s",
                run_id=self.run_id,
                step_id=ctx.step_id,
            ) from None

    def _invoke(self, step: Step[Any, Any], ctx: StepContext[Any]) -> Awaitable[Any]:
        """One call of the step's function, on the executor chosen for it."""
        if step.executor is None and not self.d.decides("make_step_executor"):
            return run_locally(step, ctx)  # the default, without asking anyone
        executor = self.executors.get(step)
        if executor is None:
            executor = self.executors[step] = self._choose_executor(step, ctx)
        return executor.execute(step, ctx)

    def _choose_executor(self, step: Step[Any, Any], ctx: StepContext[Any]) -> StepExecutor:
        if step.executor == LocalExecutor.name:  # pinned to this process: nobody is asked
            return LocalExecutor()
        chosen = self.d.decide("make_step_executor", step=step, workflow_id=ctx.workflow_id)
        if step.executor is None:  # any answer will do, or none
            return chosen or LocalExecutor()
        if chosen is not None and chosen.name == step.executor:
            return chosen  # type: ignore[no-any-return]
        got = "none" if chosen is None else f"{chosen.name!r}"
        # An optional built-in plugin named like the executor provides it (``ray``).
        provider = OPTIONAL_PLUGINS.get(step.executor, "").replace(":", ".")
        hint = provider and f"; register {provider} (the {step.executor!r} plugin)"
        raise StepExecutionError(
            f"step {step.id!r} asks for the {step.executor!r} executor, but the run's plugins "
            f"provide {got}{hint}",
            run_id=self.run_id,
            step_id=ctx.step_id,
        )

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
        wf: Workflow,
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
                    output = await self._call(step, ctx, StepRecord(item, now_ms()))
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
        self, scope: Scope, wf: Workflow, sid: str, index: int, item: Any
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
