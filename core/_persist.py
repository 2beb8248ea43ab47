"""Per-run durability: the events not yet stored, and checkpoints at step boundaries."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .storage import RunSnapshot, Storage, StoredEvent

if TYPE_CHECKING:
    from .events import _EventBase
    from .result import RunState, WorkflowResult


class Persistence:
    """Buffers a run's events and writes them with a snapshot at each checkpoint.

    Events are recorded synchronously as they are emitted; a checkpoint (after each step's
    closing events, on suspend and at the end) appends them to the log, then saves the
    snapshot, so a stored snapshot never refers to events the log lacks. Checkpoints of
    concurrent steps are serialised.
    """

    def __init__(self, storage: Storage, run_id: str) -> None:
        self.storage = storage
        self.run_id = run_id
        self.pending: list[StoredEvent] = []
        self.writing: list[StoredEvent] = []
        self._lock = asyncio.Lock()

    def record(self, event: _EventBase) -> None:
        """Keep ``event`` for the next checkpoint."""
        self.pending.append(StoredEvent(event.seq, event.wire_type, event.to_wire()))

    def unstored(self) -> list[StoredEvent]:
        """Events emitted but maybe not stored yet (being written, or waiting)."""
        return [*self.writing, *self.pending]

    async def checkpoint(self, snapshot: Callable[[], RunSnapshot] | None) -> None:
        """Store the pending events, then the snapshot ``snapshot()`` makes at that moment
        (events only when ``snapshot`` is ``None``)."""
        async with self._lock:
            self.writing, self.pending = self.pending, []
            # Taken now, with no await since the events moved: it matches them exactly (a
            # parallel step ending during the writes below belongs to the next checkpoint).
            snap = snapshot() if snapshot is not None else None
            try:
                await self.storage.append_events(self.run_id, self.writing)
            except BaseException:
                self.pending[:0] = self.writing  # keep them for the next try
                raise
            finally:
                self.writing = []
            if snap is not None:
                await self.storage.save_run(snap)


def make_snapshot(
    *,
    run_id: str,
    workflow_id: str,
    state: RunState,
    runtime_context: dict[str, Any],
    next_seq: int,
    result: WorkflowResult | None,
) -> RunSnapshot:
    """The run's state as storage keeps it (``running`` until ``result`` is given).

    A final snapshot is taken just before ``finish`` and counts it in ``last_seq``.
    """
    final = result is not None and result.status != "suspended"
    return RunSnapshot(
        run_id=run_id,
        workflow_id=workflow_id,
        status=result.status if result is not None else "running",
        state=state.to_json(),
        result=result.result if result is not None else None,
        error=result.error if result is not None else None,
        suspended=result.suspended if result is not None else [],
        runtime_context=_jsonable(runtime_context),
        last_seq=next_seq if final else next_seq - 1,
        updated_at=time.time_ns() // 1_000_000,
    )


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    """The runtime context's values that survive JSON (others cannot be stored)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        out[key] = value
    return out
