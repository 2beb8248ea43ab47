"""A durable run's side of storage: its claim, what it has not stored yet, and the commit
watermark that its consumers wait on.

Events, step records and the run's head are encoded (strict JSON) the moment they are
recorded, so a value JSON cannot hold fails where it was made, naming it. A flusher task per
run sends what is pending to the storage as one checkpoint at a time, in order; the storage
groups the checkpoints of concurrent runs into one transaction. ``Run.stream()`` of a durable
run yields an event only once it is committed: what a consumer was shown is what the log holds
after any crash.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, cast

from .storage import Checkpoint, Claim, Storage, StoredRecord
from .storage._base import new_owner, now_ms
from .storage._codec import encode

if TYPE_CHECKING:
    from .events import Event, _EventBase
    from .result import StepRecord, WorkflowResult


class Persistence:
    """Claims a run for one execution at a time and streams its writes to the storage."""

    def __init__(self, storage: Storage, run_id: str, workflow_id: str) -> None:
        self.storage = storage
        self.run_id = run_id
        self.workflow_id = workflow_id
        self.owner = new_owner()
        self.sync = getattr(storage, "durability", "async") == "sync"
        self.error: BaseException | None = None
        """Why storing stopped (the storage failed, or the run was claimed away): from then
        on nothing more is stored and consumers are no longer held back."""
        self.abandoned = False
        """The execution is being left as it is (the process stops): nothing more is stored."""
        self._events: list[_EventBase] = []
        self._wires: list[tuple[int, str, str]] = []
        self._inflight: list[_EventBase] = []
        self._records: dict[tuple[str, tuple[str, ...]], StoredRecord] = {}
        self._dropped: list[tuple[str, ...]] = []
        self._head: dict[str, Any] = {"status": "running"}
        self._context = "{}"
        self._context_dirty = False
        self._meta = "{}"
        self._meta_dirty = False
        self._version = 0  # bumped by every change; committed_version trails it
        self.last_seq = -1
        self._order = -1
        self.committed_seq = -1
        self._committed_version = 0
        self._flusher: asyncio.Task[None] | None = None
        self._seq_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._version_waiters: list[tuple[int, asyncio.Future[None]]] = []

    # -- claiming ------------------------------------------------------------------------------

    async def claim(
        self,
        *,
        create: tuple[Any, dict[str, Any]] | None = None,
        expect: tuple[str, ...] = (),
        expect_seq: int | None = None,
    ) -> None:
        """Take the run for an execution (or create it, with its input and runtime context).

        :raises RunClaimedError: if someone else holds it, or it is not in ``expect``.
        :raises StorageError: if the input or the runtime context cannot be stored.
        """
        encoded = None
        if create is not None:
            input_data, context = create
            encoded = (
                self.workflow_id,
                encode(input_data, f"run {self.run_id}: the input", run_id=self.run_id),
                self._encode_context(context),
            )
        lease = now_ms() + int(self.storage.lease_seconds * 1000)
        await self.storage.claim(Claim(self.run_id, self.owner, lease, expect, expect_seq, encoded))
        self.error = None
        self.abandoned = False
        self._head = {"status": "running"}

    def _encode_context(self, context: dict[str, Any]) -> str:
        return encode(context, f"run {self.run_id}: the runtime context", run_id=self.run_id)

    # -- recording -----------------------------------------------------------------------------

    def record(self, event: _EventBase) -> None:
        """Keep ``event`` for the log (before it is dispatched).

        :raises StorageError: if its data cannot be stored as JSON.
        """
        step = getattr(event, "step_id", None)
        wire = encode(
            event.to_wire(),
            f"step {step!r}: its {event.wire_type!r} event"
            if step
            else f"the {event.wire_type!r} event",
            run_id=self.run_id,
            step_id=step,
        )
        self._events.append(event)
        self._wires.append((event.seq, event.wire_type, wire))
        self.last_seq = event.seq
        self._changed()

    def put(self, path: tuple[str, ...], record: StepRecord) -> None:
        """Keep the step record at ``path`` for the next checkpoint.

        :raises StorageError: if the record (its output, payload...) cannot be stored.
        """
        data = encode(
            record.to_dict(),
            f"step {'.'.join(path)!r}",
            run_id=self.run_id,
            step_id=".".join(path),
        )
        self._records[("step", path)] = StoredRecord("step", path, self._next_order(), data)
        self._changed()

    def _next_order(self) -> int:
        # Entries sort by the seq they were first written at, then by write order within it
        # (parallel steps may finish between the same two events).
        base = (self.last_seq + 1) << 20
        self._order = max(self._order + 1, base)
        return self._order

    def restart_nested(self, path: tuple[str, ...], input_data: Any) -> None:
        """A nested workflow at ``path`` starts from scratch: forget what is stored below it."""
        data = encode(input_data, f"step {'.'.join(path)!r}: its input", run_id=self.run_id)
        depth = len(path)
        for key in [k for k in self._records if k[1][:depth] == path and len(k[1]) > depth]:
            del self._records[key]
        self._dropped.append(path)
        self._records[("nested", path)] = StoredRecord("nested", path, self._next_order(), data)
        self._changed()

    def set_context(self, context: dict[str, Any]) -> None:
        """Store the runtime context with the next checkpoint, if it changed."""
        if not context and self._context == "{}":  # every step asks; most runs have none
            return
        encoded = self._encode_context(context)
        if encoded != self._context:
            self._context, self._context_dirty = encoded, True
            self._changed()

    def set_meta(self, meta: dict[str, Any]) -> None:
        """Store the run's metadata with the next checkpoint, if it changed."""
        if not meta and self._meta == "{}":
            return
        encoded = encode(meta, f"run {self.run_id}: its metadata", run_id=self.run_id)
        if encoded != self._meta:
            self._meta, self._meta_dirty = encoded, True
            self._changed()

    def restored(self, context: dict[str, Any], meta: dict[str, Any], last_seq: int) -> None:
        """Take up what storage already holds (a loaded run)."""
        self._context, self._meta = self._encode_context(context), encode(meta, "metadata")
        self.last_seq = self.committed_seq = last_seq

    def finish(self, result: WorkflowResult) -> None:
        """The execution ended (or suspended) with ``result``: store it, and let the run go."""
        status = result.status
        self._head = {
            "status": status,
            "result": encode(result.result if status == "success" else None, "the result"),
            "error": result.error,
            "suspended": encode(result.suspended, "the suspended paths"),
            "release": True,
        }
        self._changed()

    def unstored(self) -> list[Event]:
        """Events recorded but not committed yet (being written, or waiting)."""
        return cast("list[Event]", [*self._inflight, *self._events])

    # -- writing -------------------------------------------------------------------------------

    def _changed(self) -> None:
        self._version += 1
        if self._flusher is None and self.error is None and not self.abandoned:
            self._flusher = asyncio.get_running_loop().create_task(
                self._flush(), name=f"stepstream-persist-{self.run_id}"
            )

    async def commit(self, *, wait: bool | None = None) -> None:
        """Make sure everything recorded so far gets stored; wait for it when ``wait`` (by
        default: when the storage asks for ``durability="sync"``).

        :raises StorageError: (or ``RunClaimedError``) if storing failed.
        """
        if self.error is not None:
            raise self.error
        if not (self.sync if wait is None else wait) or self.abandoned:
            return
        target = self._version
        if self._committed_version >= target:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._version_waiters.append((target, waiter))
        await waiter

    async def committed(self, seq: int) -> None:
        """Wait until the event ``seq`` is stored (at once when storing has stopped)."""
        if self.committed_seq >= seq or self.error is not None or self.abandoned:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._seq_waiters.append((seq, waiter))
        await waiter

    def _take(self) -> Checkpoint:
        head = self._head
        checkpoint = Checkpoint(
            run_id=self.run_id,
            owner=self.owner,
            status=head["status"],
            last_seq=self.last_seq,
            events=self._wires,
            records=list(self._records.values()),
            dropped=self._dropped,
            result=head.get("result", "null"),
            error=head.get("error"),
            suspended=head.get("suspended", "[]"),
            runtime_context=self._context if self._context_dirty else None,
            meta=self._meta if self._meta_dirty else None,
            release=head.get("release", False),
        )
        self._inflight, self._events, self._wires = self._events, [], []
        self._records, self._dropped = {}, []
        self._context_dirty = self._meta_dirty = False
        return checkpoint

    async def _flush(self) -> None:
        # The run's only writer: one checkpoint in flight at a time keeps the log in order.
        try:
            while self._committed_version < self._version and not self.abandoned:
                version = self._version
                checkpoint = self._take()
                try:
                    await self.storage.save_checkpoint(checkpoint)
                except Exception as exc:
                    self.error = exc
                    break
                finally:
                    self._inflight = []
                self.committed_seq = checkpoint.last_seq
                self._committed_version = version
                self._wake()
        finally:
            self._flusher = None
            self._wake(everyone=True)

    def _wake(self, *, everyone: bool = False) -> None:
        """Release the waiters whose mark is committed (``everyone`` once the flusher stops:
        those waiting for a commit get its error, if storing failed)."""
        self._seq_waiters = _release(self._seq_waiters, self.committed_seq, everyone, None)
        error = self.error if everyone else None
        self._version_waiters = _release(
            self._version_waiters, self._committed_version, everyone, error
        )

    async def close(self) -> None:
        """Wait for the flusher to stop (at the end of an execution)."""
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)


def _release(
    waiters: list[tuple[int, asyncio.Future[None]]],
    reached: int,
    everyone: bool,
    error: BaseException | None,
) -> list[tuple[int, asyncio.Future[None]]]:
    keep = []
    for mark, waiter in waiters:
        if waiter.done():
            continue
        if mark <= reached:
            waiter.set_result(None)
        elif everyone:
            if error is not None:
                waiter.set_exception(error)
            else:
                waiter.set_result(None)
        else:
            keep.append((mark, waiter))
    return keep
