"""Per-run durability: the events not yet stored, and checkpoints at step boundaries."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from .storage import RunSnapshot, Storage, StoredEvent

if TYPE_CHECKING:
    from .events import _EventBase


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
            try:
                await self.storage.append_events(self.run_id, self.writing)
            except BaseException:
                self.pending[:0] = self.writing  # keep them for the next try
                raise
            finally:
                self.writing = []
            if snapshot is not None:
                await self.storage.save_run(snapshot())
