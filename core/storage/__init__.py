"""Durable runs: where a run's state, its event log and its owner are kept.

A :class:`Storage` keeps, per run, a small *head* (status, input, result, owner and lease),
one record per step (upserted by the step's path, so a checkpoint's cost does not grow with the
steps before it), and the run's events, sequence-numbered. Two backends:
:class:`~stepstream.storage.sqlite.SQLiteStorage` (the embedded default, a file) and
:class:`~stepstream.storage.postgres.PostgresStorage` (the ``stepstream[postgres]`` extra, for
many processes).

**Ownership.** A run executes in exactly one place at a time. Starting, resuming or recovering
a run first :meth:`~Storage.claim`\\ s it: a compare-and-set in the database that sets an
owner and a lease, renewed while the run executes and released at its end. A second claimant
gets :class:`~stepstream.errors.RunClaimedError`. A run whose owner's lease expired reads as
``interrupted`` and may be claimed again (recovery). A run created and not started yet
(``Workflow.create_run``) is stored ``pending`` (:meth:`~Storage.create_pending`), with no
owner: its start is a claim like any other, so it starts once whichever process starts it.

**Checkpoints.** Everything an execution writes goes through :meth:`~Storage.save_checkpoint`:
its new events, its changed step records and its head, in one transaction, accepted only from
the run's owner. Backends group the checkpoints of concurrent runs into one transaction per
flush (group commit).

**Following.** :meth:`~Storage.follow` is a run's log as an async iterator: the events
stored so far, read in pages, then each new one once committed, until the run ends or
suspends. The log is the source of truth; wake-ups only say when to read it. PostgreSQL hears
other processes' commits (``LISTEN/NOTIFY``) and serves any number of hosts; SQLite wakes the
followers of its own commits at once and polls for other processes' (single host).

Every method is a coroutine (``follow`` an async iterator); backends do their I/O off the
event loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..status import CLAIMABLE, FINAL, RunStatus

__all__ = [
    "CLAIMABLE_STATUSES",
    "FINAL_STATUSES",
    "Checkpoint",
    "Claim",
    "RunSnapshot",
    "RunSummary",
    "Storage",
    "StoredEvent",
    "StoredRecord",
]

FINAL_STATUSES: tuple[RunStatus, ...] = FINAL
"""Statuses of runs that will never execute again (:data:`stepstream.status.FINAL`)."""

CLAIMABLE_STATUSES: tuple[RunStatus, ...] = CLAIMABLE
"""Statuses of stored runs that an execution may claim (resume, recovery, cancel)."""


@dataclass(frozen=True)
class StoredEvent:
    """One event of a run's log: its sequence number, type and wire JSON."""

    seq: int
    type: str
    wire: dict[str, Any]


@dataclass(frozen=True)
class StoredRecord:
    """One entry of a run's state, as JSON text: a step's record (``kind`` ``"step"``) or a
    nested workflow's own input (``kind`` ``"nested"``), keyed by its id path.

    :ivar order: Where the entry sorts when the state is rebuilt (the seq of its first write;
        an upsert keeps the first order, as a Python dict keeps a key's first position).
    """

    kind: str
    path: tuple[str, ...]
    order: int
    data: str


@dataclass(frozen=True)
class Claim:
    """A request to execute a run: who asks, until when, and on what condition.

    :ivar owner: Who claims (unique per claiming ``Run`` object: ``host:pid:id``).
    :ivar lease_until: Until when the claim holds unless renewed (epoch milliseconds).
    :ivar expect: The stored statuses that may be claimed (``"suspended"``, ``"interrupted"``;
        ``"running"`` only with the claimant's own owner id).
    :ivar expect_seq: The run's last sequence number as the claimant knows it: a run that
        changed since (another process resumed it) is not claimed. ``None`` skips the check.
    :ivar create: For a new run: ``(workflow_id, input JSON, runtime context JSON)``; the run
        is created ``running`` and must not exist yet, or exist ``pending`` for the same
        workflow (created and never started, see :meth:`Storage.create_pending`): of two such
        claims, one takes it.
    """

    run_id: str
    owner: str
    lease_until: int
    expect: tuple[str, ...] = ()
    expect_seq: int | None = None
    create: tuple[str, str, str] | None = None


@dataclass(frozen=True)
class Checkpoint:
    """What one execution of a run stores at once, in one transaction.

    JSON values are given as text, encoded (and checked) by the run before it gets here.

    :ivar status: The run's status after this checkpoint (``running`` mid-run).
    :ivar last_seq: The seq of the run's last event so far.
    :ivar events: New events, in seq order, each ``(seq, type, wire JSON)``.
    :ivar records: Step records (and nested inputs) written since the last checkpoint.
    :ivar dropped: Id paths whose entries below are deleted first (a nested workflow that
        starts again from scratch).
    :ivar result: The result's JSON (final checkpoints).
    :ivar suspended: The suspended paths' JSON (a suspended run).
    :ivar runtime_context: The runtime context's JSON, or ``None`` when unchanged.
    :ivar meta: The run-level metadata's JSON, or ``None`` when unchanged.
    :ivar release: Whether the owner lets the run go (its execution ended).
    """

    run_id: str
    owner: str
    status: str
    last_seq: int
    events: Sequence[tuple[int, str, str]] = ()
    records: Sequence[StoredRecord] = ()
    dropped: Sequence[tuple[str, ...]] = ()
    result: str = "null"
    error: str | None = None
    suspended: str = "[]"
    runtime_context: str | None = None
    meta: str | None = None
    release: bool = False
    lease_until: int = 0


@dataclass(frozen=True)
class RunSnapshot:
    """A run as stored, rebuilt from its head and step records.

    :ivar status: ``running`` (its owner's lease is alive), ``interrupted`` (its owner died:
        claimable for recovery), ``success``, ``failed``, ``suspended`` or ``canceled``.
    :ivar state: The run's step records, nested workflows' included (``RunState.to_json()``).
    :ivar last_seq: The sequence number of the run's last stored event.
    :ivar owner: Who executes the run now (``None`` when nobody does).
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
    owner: str | None = None
    lease_until: int = 0
    created_at: int = 0
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunSummary:
    """A line of ``list_runs()``."""

    run_id: str
    workflow_id: str
    status: str
    updated_at: int


@runtime_checkable
class Storage(Protocol):
    """Where runs are kept (see the module docstring for ownership and checkpoints)."""

    lease_seconds: float
    """How long a claim holds without renewal; the storage renews its claims meanwhile."""

    durability: str
    """``"async"``: step checkpoints are written in the background; ``"sync"``: each step
    waits for its checkpoint's commit."""

    async def claim(self, claim: Claim) -> None:
        """Take the run for an execution (a compare-and-set), or create it (``claim.create``).

        :raises RunClaimedError: if the run is held by a live owner, is not in an expected
            status, changed since ``claim.expect_seq``, or (creating) exists and is not pending.
        """
        ...

    async def create_pending(self, run_id: str, workflow_id: str) -> None:
        """Store a new run of ``workflow_id`` as ``pending``: created, not started (Mastra's
        ``createRunAsync`` stores such a snapshot), so that any process sharing the storage
        can start it. A run that exists already is left as it is.

        A pending run has no owner and no lease, is listed (``status="pending"``), is never
        recovered, and is pruned only when asked for (``prune(statuses=("pending",))``); the
        first start's claim (``claim.create``) takes it, and any other start is refused.
        """
        ...

    async def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Store the checkpoint in one transaction (grouped with concurrent ones).

        :raises RunClaimedError: if ``checkpoint.owner`` no longer holds the run.
        :raises StorageError: if the storage failed (after retrying what is safe to retry).
        """
        ...

    async def release(self, run_id: str, owner: str) -> None:
        """Let the run go without ending it: it reads as ``interrupted`` at once (a process
        stopping with runs in flight)."""
        ...

    async def load_run(self, run_id: str) -> RunSnapshot | None:
        """The run as stored, or ``None`` if the run is unknown."""
        ...

    async def read_events(
        self, run_id: str, after_seq: int = -1, *, limit: int | None = None
    ) -> list[StoredEvent]:
        """The run's events with ``seq > after_seq``, in order (at most ``limit``)."""
        ...

    def follow(
        self,
        run_id: str,
        after_seq: int = -1,
        *,
        through_suspension: bool = False,
        await_creation: bool = False,
    ) -> AsyncIterator[StoredEvent]:
        """The run's events with ``seq > after_seq``: those stored, then each one as it is
        committed, in order, with no gap and no duplicate; the iterator ends once it has
        yielded every event up to the run's last and the run is final or suspended (at once
        for an unknown run, unless ``await_creation``: a queued start; ``through_suspension``:
        only once it is final, following it through its suspensions and resumptions). Other
        processes' commits are heard through ``LISTEN/NOTIFY`` on PostgreSQL; SQLite finds
        them by reading the run's head every ``follow_recheck`` seconds (single host). Either
        way a follower that hears nothing reads the head again after ``follow_recheck``
        seconds, so a lost wake-up delays it, never stops it."""
        ...

    async def list_runs(
        self,
        *,
        workflow_id: str | None = None,
        status: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[RunSummary]:
        """Runs, most recently updated first (``status="interrupted"`` finds the runs whose
        owner's lease expired)."""
        ...

    async def prune(self, *, older_than: float, statuses: Sequence[str] = FINAL_STATUSES) -> int:
        """Delete runs (head, records, events) in ``statuses`` not updated for ``older_than``
        seconds; return how many were deleted."""
        ...

    async def close(self) -> None:
        """Release connections and threads (claims still held are released first)."""
        ...
