"""Runs: start, stream, watch, resume and cancel one execution of a workflow."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from ._dispatch import Dispatcher
from ._execution import CANCELED, Execution, end_run
from ._loop import sync_twin
from ._persist import Persistence
from ._scope import ResumeRequest, StepRef, resolve_path
from .context import RuntimeContext
from .errors import RunClaimedError, RunStateError, StreamError
from .events import Event
from .hub import WINDOW, Hub, Listener, Subscription
from .plugin_manager import PluginManager, run_plugin_manager
from .result import RunState, WorkflowResult, steps_wire
from .run_stream import DEFAULT_BUFFER_SIZE, RunStream, SyncRunStream
from .status import CLAIMABLE, RunStatus, is_final
from .steps import to_jsonable
from .storage import RunSnapshot, Storage
from .watching import EventWatcher, StateWatcher, WatchCallback, WatchType

if TYPE_CHECKING:
    # The workflow by what the engine needs of it: the Workflow class makes its runs, so is
    # built on this module.
    from .graph import WorkflowGraph

log = logging.getLogger("stepstream")

__all__ = ["DEFAULT_BUFFER_SIZE", "Run", "RunStream", "SyncRunStream"]


class Run:
    """One run of a committed workflow; made by ``workflow.create_run()``.

    A run executes once from its input (``start()`` or ``stream()``) and again from each
    suspended step with ``resume()``. Its events go through the plugin hooks and to the
    consumer of ``stream()``; ``result`` holds the latest :class:`WorkflowResult`.
    """

    def __init__(
        self,
        workflow: WorkflowGraph,
        *,
        run_id: str | None = None,
        plugin_manager: PluginManager,
        plugins: Sequence[object] = (),
        storage: Storage | None = None,
    ) -> None:
        self.run_id = run_id or str(uuid.uuid4())
        self.workflow = workflow
        self.plugin_manager = plugin_manager
        self.storage = storage
        local = run_plugin_manager(plugin_manager, plugins) if plugins else None
        self._dispatcher = Dispatcher(self.run_id, plugin_manager, local)
        if storage is not None:
            self._dispatcher.persist = Persistence(storage, self.run_id, workflow.id)
        self._hub = self._dispatcher.hub = Hub(
            self.run_id, storage, self._dispatcher.persist, on_error=self._dispatcher.report
        )
        self._state = RunState()
        self._interrupted = False
        self._held_by: str | None = None  # a loaded run that another process is executing
        self._events: dict[str, Any] = {}
        self._execution: Execution | None = None
        self._followups: set[asyncio.Task[None]] | None = None  # made when first needed
        self._runtime_context = RuntimeContext()
        self._task: asyncio.Task[WorkflowResult] | None = None
        self._result: WorkflowResult | None = None
        self._started = False
        self._cancel_requested = False
        # Whether the current execution holds the run, and an event for whoever waits for it
        # (made only then: an ``asyncio.Event`` costs ~900 bytes, per run).
        self._claimed = False
        self._claimed_event: asyncio.Event | None = None
        self._claim_error: BaseException | None = None

    # -- state ----------------------------------------------------------------------------------

    @property
    def status(self) -> RunStatus:
        """``pending`` before it starts, ``running`` while an execution is under way (here,
        or in another process for a loaded run); ``interrupted`` for a run loaded from storage
        whose process died mid-run (or stopped executing it)."""
        if self._task is not None and not self._task.done():
            return "running"
        if self._held_by is not None:
            return "running"
        if self._interrupted:
            return "interrupted"
        if self._result is not None:
            return self._result.status
        return "running" if self._started else "pending"

    @property
    def executing(self) -> bool:
        """Whether an execution of the run is under way in this process (``status`` is also
        ``running`` for a loaded run that another process executes)."""
        return self._task is not None and not self._task.done()

    @property
    def last_seq(self) -> int:
        """The seq of the run's latest event (-1 before any): ``subscribe(run.last_seq)``
        follows the run from now on."""
        return self._hub.head

    @property
    def _ending(self) -> WorkflowResult | None:
        # The running execution's result, once known (while its `finish` is on its way).
        return self._execution.result if self._execution is not None else None

    def current_state(self) -> dict[str, Any]:
        """The run's state right now, in ``getWorkflowState()``'s shape (also mid-run)."""
        steps = steps_wire(self._state.input, self._state.steps)
        result = self._result if self.status != "running" else self._ending
        return {
            "status": result.status if result is not None else self.status,
            "steps": steps,
            "result": result.result if result is not None else None,
            "error": result.error if result is not None else None,
        }

    @property
    def result(self) -> WorkflowResult | None:
        """The result of the latest finished execution, if any."""
        return self._result

    @property
    def usage(self) -> dict[str, Any] | None:
        """The run's model usage so far, live (each model response is added as it is
        reported), in :meth:`stepstream.usage.Usage.to_json` form; ``None`` before any."""
        usage: dict[str, Any] | None = self._state.meta.get("usage")
        return usage

    # -- loading --------------------------------------------------------------------------------

    def _restore(self, snapshot: RunSnapshot) -> None:
        """Take up a run stored by another process (see ``Workflow.load_run``)."""
        if snapshot.status == "pending":  # created, never started: nothing to take up
            return
        self._state = RunState.from_json(snapshot.state)
        self._runtime_context = RuntimeContext(snapshot.runtime_context)
        self._dispatcher.seq = snapshot.last_seq + 1
        persist = self._dispatcher.persist
        if persist is not None:
            persist.restored(snapshot.runtime_context, snapshot.meta, snapshot.last_seq)
        self._started = True
        self._hub.restored(snapshot.last_seq, snapshot.status)
        if snapshot.status == "running":
            self._held_by = snapshot.owner
            return
        if snapshot.status == "interrupted":
            self._interrupted = True
            return
        self._result = WorkflowResult(
            run_id=self.run_id,
            status=snapshot.status,  # type: ignore[arg-type]
            input=self._state.input,
            steps=self._state.snapshot_steps(),
            result=snapshot.result,
            error=snapshot.error,
            suspended=[list(p) for p in snapshot.suspended],
            usage=self._state.meta.get("usage"),
        )

    # -- starting -------------------------------------------------------------------------------

    async def start(
        self, input_data: Any = None, runtime_context: RuntimeContext | None = None
    ) -> WorkflowResult:
        """Run the workflow to its end (or its suspension) and return the result."""
        return await self._begin(input_data, runtime_context)

    start_sync = sync_twin(start)

    def subscribe(
        self,
        after_seq: int | None = None,
        *,
        buffer: int = WINDOW,
        close_on_suspend: bool = False,
    ) -> Subscription:
        """A new subscriber of the run's events after ``after_seq`` (``None``: from the first).

        Any number may subscribe, at any moment: each gets every event from ``after_seq + 1``
        on, stored ones then live ones, with no gap and no duplicate, and ends at ``finish``
        (or at a suspension, with ``close_on_suspend``). A subscriber never slows the run and
        leaving it (``aclose()``, ``break``, the end of ``async with``) does not affect the
        run. One that falls more than ``buffer`` events behind an in-memory run ends with
        ``end_reason == "lagged"``; a durable run's reads on from storage (the rule is in
        :mod:`stepstream.hub`). A durable run's subscribers are shown committed events only.

        :raises ValueError: if ``buffer`` is below 1 or ``after_seq`` below -1.
        """
        return self._hub.subscribe(after_seq, buffer=buffer, close_on_suspend=close_on_suspend)

    def stream(
        self,
        input_data: Any = None,
        runtime_context: RuntimeContext | None = None,
        *,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        close_on_suspend: bool = False,
        after_seq: int | None = None,
    ) -> RunStream:
        """Return a stream of the run's events; iterating it starts the run (if not started).

        The stream is an async iterator and an async context manager, consumable once. By
        default it holds the events from now on; with ``after_seq=n`` it first has the run's
        events after sequence number ``n`` (from storage for a durable run, else from the
        events the run still holds in memory), then the live ones, with no gap and no
        duplicate: a consumer that lost its connection resumes where it left off. A finished
        run's stream then just replays and ends. A suspended run's stream stays open for the
        events of ``resume()``, unless ``close_on_suspend``.

        The first stream open on a run is its *primary* stream: it holds at most about
        ``buffer_size`` events, and a slower consumer pauses the run; leaving it early
        (``break``, ``aclose()``, leaving the ``async with`` block) cancels a running run.
        Streams opened while a primary one is open are plain subscribers (see
        :meth:`subscribe`): they never slow the run and leaving them leaves the run alone.

        :raises StreamError: if no plugin provides streams (the ``stream`` plugin is blocked).
        :raises RunStateError: if the run has ended and ``after_seq`` is not given.
        """
        ended = is_final(self.status)
        if ended and after_seq is None:
            raise RunStateError(
                f"run {self.run_id} has ended ({self.status}); nothing more will be streamed",
                run_id=self.run_id,
            )
        after = self._hub.head if after_seq is None else after_seq
        if ended or self._hub.primary is not None:
            subscription = self._hub.subscribe(after, close_on_suspend=close_on_suspend)
            return RunStream(self, subscription, None)
        channel = self._dispatcher.decide(
            "open_event_stream", run_id=self.run_id, buffer_size=buffer_size
        )
        if channel is None:
            raise StreamError(
                "Run.stream() needs a plugin answering 'open_event_stream'; the built-in "
                "'stream' plugin is blocked or missing from this plugin manager",
                run_id=self.run_id,
            )
        subscription = self._hub.subscribe(
            after, close_on_suspend=close_on_suspend, channel=channel
        )
        start = None if self._started else (input_data, runtime_context)
        return RunStream(self, subscription, start)

    def stream_sync(
        self,
        input_data: Any = None,
        runtime_context: RuntimeContext | None = None,
        *,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        close_on_suspend: bool = True,
        after_seq: int | None = None,
    ) -> SyncRunStream:
        """The sync twin of :meth:`stream`, on this thread's event loop; iterate it with a
        plain ``for``.

        It closes on suspend by default, since nothing else can resume the run meanwhile in
        the same thread.
        """
        return SyncRunStream(
            self.stream(
                input_data,
                runtime_context,
                buffer_size=buffer_size,
                close_on_suspend=close_on_suspend,
                after_seq=after_seq,
            )
        )

    async def history(self, after_seq: int = -1) -> list[Event]:
        """The run's events after ``after_seq`` so far (stored, then those the run holds in
        memory), read through a subscriber that stops once it has caught up."""
        head = self._hub.head
        found: list[Event] = []
        async with self._hub.subscribe(after_seq) as subscription:
            if head > after_seq:
                async for event in subscription:
                    found.append(event)
                    if event.seq >= head:
                        break
        return found

    async def started(self) -> None:
        """Wait until the execution that ``start()`` or ``stream()`` began has claimed (and
        stored) the run: from then on other processes see it. Immediate for in-memory runs.

        :raises RunClaimedError: if its claim was refused.
        """
        if not self._claimed:
            if self._claimed_event is None:
                self._claimed_event = asyncio.Event()
            await self._claimed_event.wait()
        if self._claim_error is not None and isinstance(self._claim_error, Exception):
            raise self._claim_error

    async def wait_stored(self, seq: int) -> None:
        """Wait until this run's event ``seq`` is stored (at once for an in-memory run, or
        once storing has stopped); show a durable run's events to others only after it, so
        that nobody is shown an event a crash would take back."""
        persist = self._dispatcher.persist
        if persist is not None and seq > persist.committed_seq:
            await persist.committed(seq)

    def watch(self, callback: WatchCallback, type: WatchType = "watch") -> Callable[[], None]:
        """Call ``callback(record)`` for each later transition of this run; returns an unwatch
        function (Mastra's ``run.watch(cb, type)``).

        With ``type="watch"`` (the default, as in Mastra) a record is a dict of the run's
        state when a step starts, when it ends and when the execution ends (the shape is in
        :mod:`stepstream.watching`); with ``"watch-v2"`` it is each stream :class:`Event`.
        The callback is a listener of the run's hub (:mod:`stepstream.hub`): called as each
        event is published, and an awaitable it returns is awaited before the run goes on;
        its errors are reported as plugin errors. It sees only this run's events.

        :raises ValueError: for another ``type``.
        """
        watcher: Listener
        if type == "watch":
            watcher = StateWatcher(self.current_state, callback)
        elif type == "watch-v2":
            watcher = EventWatcher(callback)
        else:
            raise ValueError(f"watch() type must be 'watch' or 'watch-v2', got {type!r}")
        return self._hub.listen(watcher)

    def _begin(
        self, input_data: Any, runtime_context: RuntimeContext | None
    ) -> asyncio.Task[WorkflowResult]:
        if self._started:
            raise RunStateError(f"run {self.run_id} has already started", run_id=self.run_id)
        self._started = True
        self._state.input = to_jsonable(input_data)
        if runtime_context is not None:
            self._runtime_context = runtime_context
        persist = self._dispatcher.persist
        if persist is None:
            return self._launch(None)
        state, context = self._state, self._runtime_context

        async def create() -> None:
            await persist.claim(create=(state.input, context.to_dict()))

        return self._launch(None, create)

    def _launch(
        self, resume: ResumeRequest | None, claim: Callable[[], Awaitable[None]] | None = None
    ) -> asyncio.Task[WorkflowResult]:
        execution = Execution(
            workflow=self.workflow,
            state=self._state,
            dispatcher=self._dispatcher,
            runtime_context=self._runtime_context,
            resume=resume,
            is_canceled=self._is_cancel_requested,
            events=self._events,
        )
        self._execution = execution
        self._claim_error = None
        self._hub.resumed()
        if claim is None:  # nothing to claim here (in memory, or claimed before the launch)
            self._set_claimed()
        else:
            self._claimed = False
            if self._claimed_event is not None:
                self._claimed_event.clear()
        self._task = asyncio.get_running_loop().create_task(
            self._execute(execution, claim), name=f"stepstream-run-{self.run_id}"
        )
        return self._task

    def _is_cancel_requested(self) -> bool:
        # A method rather than a lambda per launch: a bound method is the smaller object.
        return self._cancel_requested

    def _set_claimed(self) -> None:
        self._claimed = True
        if self._claimed_event is not None:
            self._claimed_event.set()

    async def _execute(
        self, execution: Execution, claim: Callable[[], Awaitable[None]] | None
    ) -> WorkflowResult:
        # The result is recorded here, inside the task, so that whoever awaits the task sees
        # it at once (a done-callback would only run on a later loop iteration).
        try:
            if claim is not None:  # a durable run is claimed (and stored) before anything runs
                try:
                    await claim()
                except BaseException as exc:
                    self._claim_error = exc
                    raise
                finally:
                    self._set_claimed()
            result = await execution.execute(cancel_requested=execution.is_canceled)
        except BaseException as exc:
            # A cancel from outside still ended the run properly: keep its result.
            self._result = execution.result or self._result
            self._hub.fail(exc)
            _retrieve_later()  # the subscribers are where the error is delivered
            raise
        self._result = result
        self._hub.settle(result)
        if result.status == "suspended":
            self._deliver_kept_events(result)
        return result

    def _deliver_kept_events(self, result: WorkflowResult) -> None:
        # An event sent while the run was on its way to the step waiting for it.
        for path in result.suspended:
            payload = self._suspend_payload(path)
            if isinstance(payload, dict) and payload.get("event") in self._events:
                data = self._events.pop(payload["event"])
                task = asyncio.get_running_loop().create_task(self._resume_later(path, data))
                if self._followups is None:
                    self._followups = set()
                self._followups.add(task)
                task.add_done_callback(self._followups.discard)
                return

    async def _resume_later(self, path: list[str], data: Any) -> None:
        await self.resume(step=path, resume_data=data)  # waits for the ending execution

    # -- resume and cancel -------------------------------------------------------------------

    async def resume(
        self,
        step: StepRef | None = None,
        resume_data: Any = None,
        runtime_context: RuntimeContext | None = None,
    ) -> WorkflowResult:
        """Resume the suspended ``step`` (id, step object or id path) with ``resume_data``.

        Without ``step``, the only suspended step is resumed. The run's open stream (if any)
        receives the resumed events; a stream opened after ``resume()`` picks up from there.
        A step waiting in place for its event (``wait_for_event`` in a run kept in memory)
        is given ``resume_data`` as that event's data, and the run goes on to its end.

        :raises RunStateError: if the run is not suspended or ``step`` is not suspended.
        :raises RunClaimedError: (a ``RunStateError``) if another execution holds the run, or
            it changed in storage since this ``Run`` saw it.
        """
        return await (await self.resuming(step, resume_data, runtime_context))

    resume_sync = sync_twin(resume)

    async def resuming(
        self,
        step: StepRef | None = None,
        resume_data: Any = None,
        runtime_context: RuntimeContext | None = None,
    ) -> asyncio.Task[WorkflowResult]:
        """Check and claim the resumption as :meth:`resume` does, then let it execute in a
        task of its own and return that task (a server answers once the run is its own)."""
        execution = self._execution
        if self._task is not None and not self._task.done():
            if execution is not None and execution.wake_step(step, resume_data):
                return self._task  # a step waiting in place for its event goes on with it
            # Called right after a `step-suspended` event: the execution is still ending.
            await asyncio.wait([self._task])
        if self._held_by is not None:
            raise RunClaimedError(
                f"run {self.run_id} is being executed by {self._held_by}; load it again "
                "once that execution has ended",
                run_id=self.run_id,
                owner=self._held_by,
            )
        if runtime_context is not None:
            self._runtime_context = runtime_context
        if self.status == "interrupted" and step is None:
            # Recovery after a crash: completed steps are skipped, the others run again.
            await self._claim("interrupted")
            self._interrupted = False
            return self._launch(ResumeRequest(path=None, data=None))
        result = self._result
        if result is None or result.status != "suspended" or self.status == "running":
            raise RunStateError(
                f"This workflow run was not suspended: run {self.run_id} is not suspended "
                f"(status {self.status!r})",
                run_id=self.run_id,
            )
        path = resolve_path(step, result.suspended, self.run_id)
        await self._claim("suspended")
        return self._launch(ResumeRequest(path=path, data=resume_data))

    async def _claim(self, status: str) -> None:
        """Take a durable run for an execution here (a no-op for an in-memory run).

        :raises RunClaimedError: if another execution holds it, or it changed in storage.
        """
        persist = self._dispatcher.persist
        if persist is not None:
            await persist.claim(expect=(status,), expect_seq=self._dispatcher.seq - 1)
            self._held_by = None

    async def send_event(self, event: str, data: Any = None) -> WorkflowResult | None:
        """Deliver ``event`` to the step waiting for it (``Workflow.wait_for_event``); the
        step runs with ``data`` as its ``ctx.resume_data``.

        A step waiting in place (a run in memory, executing here) is woken where it waits
        and ``None`` is returned: the run goes on, and ``start()`` returns at its end. A run
        suspended at that step (a durable run, also one loaded in another process) is
        resumed and the result is returned. If the run has not reached the step yet, the
        event is kept (in memory) until it does, and ``None`` is returned.

        :raises RunStateError: if the run has ended.
        """
        execution = self._execution
        if self.executing and execution is not None and execution.wake(event, data):
            return None
        result = self._result
        if self.status == "suspended" and result is not None:
            for path in result.suspended:
                if self._suspend_payload(path) == {"event": event}:
                    return await self.resume(step=path, resume_data=data)
        if not is_final(self.status):
            self._events[event] = data  # kept until the run reaches the waiting step
            return None
        raise RunStateError(
            f"run {self.run_id} has ended ({self.status}); no step will wait for {event!r}",
            run_id=self.run_id,
        )

    def _suspend_payload(self, path: Sequence[str]) -> Any:
        state = self._state
        for step_id in path[:-1]:
            state = state.nested.get(step_id, RunState())
        record = state.steps.get(path[-1])
        return record.suspend_payload if record is not None else None

    async def cancel(self) -> WorkflowResult | None:
        """Cancel the run: running steps see cancellation, the stream ends with ``finish``.

        It works at any moment: before the run's first step (it ends canceled with ``start``
        and ``finish``), during any step or checkpoint, and while suspended. Returns the
        canceled result. A run that has ended is left as it is: its result is returned
        unchanged and a log line (``INFO``) says so; a run that never started returns ``None``.
        """
        if not self._started:
            log.info("stepstream: run %s has not started; cancel() does nothing", self.run_id)
            return None
        status = self.status
        if is_final(status):
            log.info(
                "stepstream: run %s has ended (%s); cancel() does nothing", self.run_id, status
            )
            return self._result
        self._cancel_requested = True
        task, execution = self._task, self._execution
        if task is not None and not task.done():
            # A task that has not reached its execution yet (just created, or claiming its
            # durable run) is not killed: it sees the request at its start and ends canceled,
            # with `start` and `finish`, instead of vanishing without a result.
            if execution is None or execution.entered:
                task.cancel()
            await asyncio.wait([task])
            return self._result
        if self._held_by is not None:
            raise RunClaimedError(
                f"run {self.run_id} is being executed by {self._held_by}, not here",
                run_id=self.run_id,
                owner=self._held_by,
            )
        if status in CLAIMABLE:
            await self._claim("interrupted" if status == "interrupted" else "suspended")
            self._interrupted = False
            result = self._result = _canceled(self._result or self._stored_result())
            self._result, outside = await end_run(
                self._dispatcher,
                self.workflow.id,
                result,
                runtime_context=self._runtime_context,
                meta=self._state.meta,
                cancel_requested=lambda: False,  # any cancel of this call is from outside
            )
            if outside:
                raise asyncio.CancelledError
        return self._result

    cancel_sync = sync_twin(cancel)

    def _stored_result(self) -> WorkflowResult:
        return WorkflowResult(
            run_id=self.run_id,
            status="canceled",
            input=self._state.input,
            steps=self._state.snapshot_steps(),
        )

    async def abandon(self) -> None:
        """Stop executing the run here without ending it (this process is stopping).

        A durable run keeps what it stored and reads ``interrupted`` at once, so any process
        may recover it (``resume()`` with no step, or :func:`stepstream.recover_interrupted`);
        events not stored yet are dropped, never shown. Its stream here ends with a
        :class:`RunStateError` saying so. An in-memory run is canceled.
        """
        persist = self._dispatcher.persist
        task = self._task
        if persist is None:
            await self.cancel()
            return
        if task is None or task.done():
            return
        persist.abandoned = True
        self._hub.fail(
            RunStateError(
                f"run {self.run_id} was interrupted: this process stopped executing it; "
                "it is stored and can be recovered",
                run_id=self.run_id,
            ),
            interrupted=True,
        )
        task.cancel()
        await asyncio.wait([task])
        await persist.close()
        if self.storage is not None:
            await self.storage.release(self.run_id, persist.owner)
        self._interrupted, self._result = True, None

    # -- waiting --------------------------------------------------------------------------------

    async def wait(self) -> WorkflowResult:
        """Wait for the current execution to end (or suspend) and return its result."""
        if self._task is None:
            raise RunStateError(f"run {self.run_id} has not started", run_id=self.run_id)
        if not self._task.done():
            await asyncio.wait([self._task])
        if self._result is None:  # the execution died: its error is the answer
            return self._task.result()
        return self._result


def _retrieve_later() -> None:
    # The task ends with the error too; its copy is marked as retrieved, or asyncio would
    # also log "Task exception was never retrieved".
    task = asyncio.current_task()
    if task is not None:
        task.add_done_callback(_retrieve_exception)


def _retrieve_exception(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


def _canceled(result: WorkflowResult) -> WorkflowResult:
    return dataclasses.replace(result, status="canceled", error=CANCELED)
