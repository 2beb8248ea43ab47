"""Durable runs: where a run's snapshots and its event log are kept.

A :class:`Storage` keeps, per run, the latest :class:`RunSnapshot` (written at every step
boundary, on suspend and at the end) and the run's events, sequence-numbered, so that a run
can be resumed by another process that knows only its id, and a stream can be resumed from the
last sequence number a consumer saw. Two backends: :class:`~stepstream.storage.sqlite.SQLiteStorage`
(the embedded default, a file) and :class:`~stepstream.storage.postgres.PostgresStorage` (the
``stepstream[postgres]`` extra, for many processes).

Every method is a coroutine; backends do their I/O off the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = ["RunSnapshot", "RunSummary", "Storage", "StoredEvent"]


@dataclass(frozen=True)
class StoredEvent:
    """One event of a run's log: its sequence number, type and wire JSON."""

    seq: int
    type: str
    wire: dict[str, Any]


@dataclass(frozen=True)
class RunSnapshot:
    """A run's whole state at a step boundary (JSON-able, so any backend can keep it).

    :ivar status: ``running`` (also for a run whose process died), ``success``, ``failed``,
        ``suspended`` or ``canceled``.
    :ivar state: The run's step records, nested workflows' included (``RunState.to_json()``).
    :ivar last_seq: The sequence number of the last event when the snapshot was taken.
    """

    run_id: str
    workflow_id: str
    status: str
    state: dict[str, Any]
    result: Any = None
    error: str | None = None
    suspended: list[list[str]] = field(default_factory=list)
    runtime_context: dict[str, Any] = field(default_factory=dict)
    last_seq: int = -1
    updated_at: int = 0


@dataclass(frozen=True)
class RunSummary:
    """A line of ``list_runs()``."""

    run_id: str
    workflow_id: str
    status: str
    updated_at: int


@runtime_checkable
class Storage(Protocol):
    """Where runs are kept. Implementations must keep each run's events in ``seq`` order and
    ignore an event whose ``seq`` is already stored (appends may be retried)."""

    async def save_run(self, snapshot: RunSnapshot) -> None:
        """Replace the run's snapshot."""
        ...

    async def load_run(self, run_id: str) -> RunSnapshot | None:
        """The run's latest snapshot, or ``None`` if the run is unknown."""
        ...

    async def append_events(self, run_id: str, events: list[StoredEvent]) -> None:
        """Add events to the run's log."""
        ...

    async def read_events(
        self, run_id: str, after_seq: int = -1, *, limit: int | None = None
    ) -> list[StoredEvent]:
        """The run's events with ``seq > after_seq``, in order; the first ``limit`` if given."""
        ...

    async def list_runs(
        self, *, workflow_id: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[RunSummary]:
        """Runs, most recently updated first."""
        ...

    async def close(self) -> None:
        """Release connections and threads."""
        ...
