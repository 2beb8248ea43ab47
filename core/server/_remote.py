"""Runs that another server process executes: a proxy with a run's surface, and the owner's
side of the control messages it sends.

When a request names a run that is executing in another process on the same storage,
:meth:`Runs.get() <stepstream.server._registry.Runs.get>` hands out a :class:`RemoteRun`
instead of a stale copy: its subscribers follow the stored log
(:meth:`Storage.follow <stepstream.storage.Storage.follow>`, woken by PostgreSQL's
``LISTEN/NOTIFY``), its status comes from storage, and ``cancel()``, ``resume()`` and
``send_event()`` are control messages to the owner (:func:`answer_controls` is the owner's
side), who acts and answers. When the run turns out to execute nowhere any more (it ended,
suspended or its owner died) the proxy loads it from storage and acts on it here, as if it had
never been remote. Control messages need PostgreSQL; on SQLite a remote run's controls fail
with a :class:`~stepstream.errors.RunClaimedError` naming its owner (409), as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from ..context import RuntimeContext
from ..errors import RunClaimedError, RunStateError, StorageError
from ..events import Event, event_from_wire
from ..result import RunState, WorkflowResult, steps_wire
from ..storage import FINAL_STATUSES, RunSnapshot, Storage, StoredEvent
from ._seam import Registry

if TYPE_CHECKING:
    from ..run import Run
    from ..workflow import Workflow

__all__ = [
    "CONTROL_WITHIN", "RemoteRun", "RemoteSubscription", "answer_controls",
    "remote_watch",
]  # fmt: skip

CONTROL_WITHIN = 10.0
"""Seconds a control message waits for the owner's answer before it fails (503)."""

Reload = Callable[[], Awaitable["Run | RemoteRun"]]


class RemoteSubscription:
    """A subscriber of a run executing elsewhere: its stored log from ``after_seq + 1`` on,
    as events, live. An async iterator and an async context manager.

    :ivar end_reason: ``None`` while it may yield more; then ``"finished"`` (the run's
        ``finish`` was yielded), ``"suspended"`` (the run suspended) or ``"closed"``.
    """

    def __init__(
        self, run_id: str, storage: Storage, after_seq: int | None, through_suspension: bool
    ) -> None:
        self.run_id = run_id
        self._log: AsyncIterator[StoredEvent] = storage.follow(
            run_id, -1 if after_seq is None else after_seq, through_suspension=through_suspension
        )
        self._last_type: str | None = None
        self.end_reason: Literal["finished", "suspended", "closed"] | None = None

    def __aiter__(self) -> RemoteSubscription:
        return self

    async def __anext__(self) -> Event:
        stored = await self.next_stored()
        return event_from_wire(stored.wire, run_id=self.run_id, seq=stored.seq)

    async def next_stored(self) -> StoredEvent:
        """The next event as it is stored (its wire form), for a sender that only passes it
        on: rebuilding an :class:`Event` costs more than the rest of an SSE follower's work.

        :raises StopAsyncIteration: at the end (see ``end_reason``).
        """
        if self.end_reason is not None:
            raise StopAsyncIteration
        try:
            stored = await anext(self._log)
        except StopAsyncIteration:
            self.end_reason = "finished" if self._last_type == "finish" else "suspended"
            raise
        self._last_type = stored.type
        return stored

    async def aclose(self) -> None:
        """Leave (the run is not affected)."""
        if self.end_reason is None:
            self.end_reason = "closed"
        await self._log.aclose()  # type: ignore[attr-defined]

    async def __aenter__(self) -> RemoteSubscription:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class RemoteRun:
    """A run that another process executes, as the server's routes use a run.

    :param snapshot: The run as stored when it was found executing elsewhere.
    :param reload: Gets the run again (from storage) when it executes nowhere any more.
    """

    executing = False  # not here

    def __init__(
        self, workflow: Workflow, storage: Storage, snapshot: RunSnapshot, reload: Reload
    ) -> None:
        self.workflow = workflow
        self.storage = storage
        self.run_id = snapshot.run_id
        self.owner = snapshot.owner
        self._snapshot = snapshot
        self._reload = reload

    @property
    def status(self) -> str:
        """The run's status as last read from storage (``running`` when it was found)."""
        return self._snapshot.status

    @property
    def result(self) -> WorkflowResult | None:
        return None

    def current_state(self) -> dict[str, Any]:
        """The run's state as last read from storage, in ``getWorkflowState()``'s shape."""
        snapshot = self._snapshot
        state = RunState.from_json(snapshot.state)
        done = snapshot.status in FINAL_STATUSES
        return {
            "status": snapshot.status,
            "steps": steps_wire(state.input, state.steps),
            "result": snapshot.result if snapshot.status == "success" else None,
            "error": snapshot.error if done else None,
        }

    async def refresh(self) -> None:
        """Read the run's head and steps from storage again."""
        found = await self.storage.load_run(self.run_id)
        if found is not None:
            self._snapshot = found

    def subscribe(
        self, after_seq: int | None = None, *, buffer: int = 0, close_on_suspend: bool = False
    ) -> RemoteSubscription:
        """Follow the run's events from ``after_seq + 1`` (all when ``None``) through its
        stored log, to its end (``close_on_suspend``: or its suspension), as
        :meth:`stepstream.Run.subscribe` does for a run executing here. ``buffer`` is accepted
        for that signature: a remote subscriber holds at most a page of the log, never slowing
        the run."""
        return RemoteSubscription(self.run_id, self.storage, after_seq, not close_on_suspend)

    def stream(self, *args: Any, **kwargs: Any) -> Any:
        raise RunStateError(
            f"run {self.run_id} has already started (in another server process)",
            run_id=self.run_id,
        )

    async def started(self) -> None:
        """The run is stored and executing: nothing to wait for."""

    async def wait_stored(self, seq: int) -> None:
        """What a remote run's subscribers see is stored already."""

    async def wait(self) -> WorkflowResult:
        """Wait until the run ends or suspends, wherever it executes; return its result."""
        async for _ in self.storage.follow(self.run_id, self._snapshot.last_seq):
            pass
        run = await self.workflow.load_run(self.run_id, storage=self.storage)
        if run.result is None:
            raise RunStateError(
                f"run {self.run_id} is {run.status}: it has no result yet", run_id=self.run_id
            )
        return run.result

    # -- control messages ------------------------------------------------------------------------

    async def cancel(self) -> WorkflowResult | None:
        """Ask the owner to cancel the run; return the canceled result once it is stored."""
        if await self._send("cancel", {}) is None:
            return await (await self._reload()).cancel()
        return await self.wait()

    async def send_event(self, event: str, data: Any = None) -> WorkflowResult | None:
        """Hand ``event`` to the owner (it keeps it until the run reaches the waiting step)."""
        if await self._send("send-event", {"event": event, "data": data}) is None:
            return await (await self._reload()).send_event(event, data)
        return None

    async def resuming(
        self,
        step: Any = None,
        resume_data: Any = None,
        runtime_context: RuntimeContext | None = None,
    ) -> asyncio.Task[WorkflowResult]:
        """Ask the owner to resume ``step`` once its execution ends (its suspension is being
        stored); return a task waiting for the resumed run's result."""
        body = {
            "step": step,
            "resumeData": resume_data,
            "runtimeContext": None if runtime_context is None else runtime_context.to_dict(),
        }
        if await self._send("resume", body) is None:
            return await (await self._reload()).resuming(step, resume_data, runtime_context)
        return asyncio.ensure_future(self.wait())

    async def resume(
        self,
        step: Any = None,
        resume_data: Any = None,
        runtime_context: RuntimeContext | None = None,
    ) -> WorkflowResult:
        return await (await self.resuming(step, resume_data, runtime_context))

    async def _send(self, kind: str, body: dict[str, Any]) -> dict[str, Any] | None:
        send = getattr(self.storage, "send_control", None)
        if send is None:
            raise RunClaimedError(
                f"run {self.run_id} is being executed by {self.owner}, not here (control "
                "messages between processes need PostgreSQL)",
                run_id=self.run_id,
                owner=self.owner,
            )
        answer: dict[str, Any] | None = await send(self.run_id, kind, body, within=CONTROL_WITHIN)
        if answer is not None and "error" in answer:
            if answer.get("status") == 409:
                raise RunStateError(str(answer["error"]), run_id=self.run_id)
            raise StorageError(f"run {self.run_id}: its owner failed: {answer['error']}")
        await self.refresh()
        return answer


def answer_controls(
    runs: Registry,
) -> Callable[[str, str, dict[str, Any]], Awaitable[dict[str, Any]]]:
    """The owner's handler of control messages for the runs executing in ``runs``."""

    async def handle(run_id: str, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        found = runs.executing_here(run_id)
        if found is None:
            return {"error": f"run {run_id} is not executing in this process", "status": 409}
        key, run = found
        try:
            if kind == "cancel":
                await run.cancel()
            elif kind == "send-event":
                runs.background(run.send_event(body["event"], body.get("data")), key, run)
            elif kind == "resume":
                context = body.get("runtimeContext")
                work = await run.resuming(
                    body.get("step"),
                    body.get("resumeData"),
                    None if context is None else RuntimeContext(context),
                )
                runs.background(work, key, run)
            else:
                return {"error": f"unknown control message {kind!r}", "status": 400}
        except RunStateError as exc:
            return {"error": str(exc), "status": 409}
        return {"ok": True}

    return handle


_STATE_CHANGES = ("step-result", "step-suspended", "finish")  # events after which a watch
# record's state is read from storage again (at most once per step, not per event)


async def remote_watch(
    run: RemoteRun, record: Callable[[Event | None], bytes]
) -> AsyncIterator[bytes]:
    """Mastra's watch records of a remote run: one per event after the client came, ending
    with the run's final (or suspended) state."""
    await run.refresh()
    finished = False
    async with run.subscribe(run._snapshot.last_seq, close_on_suspend=True) as events:
        async for event in events:
            if event.type in _STATE_CHANGES:
                await run.refresh()
            finished = event.type == "finish"
            yield record(event)
    if not finished:
        await run.refresh()
        yield record(None)
