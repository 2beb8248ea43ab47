"""What both SQL backends share: group commit, retries, lease renewal and crash points.

A backend implements the transactions (:meth:`StorageBase._claim_now`,
:meth:`StorageBase._write_batch`, ...); this base decides when they run:

- **Group commit.** Checkpoints from every run of a storage queue up, and so do the claims that
  create new runs (an insert that must find no run, or a pending one) and the pending runs
  that ``create_run`` stores; one writer task per event loop takes the whole queue and writes
  it in one transaction, so 1,000 concurrent runs cost a few transactions per step, not 1,000.
  Other claims (resume, recovery) are compare-and-sets of their own. A batch that fails for a
  reason retrying cannot mend is written again one checkpoint at a time, so one bad
  checkpoint fails only its own run.
- **Retries.** Transient failures (a lock held past the busy timeout, a lost connection) are
  retried with backoff, a few times; then :class:`~stepstream.errors.StorageError`.
- **Leases.** A claim holds for ``lease_seconds``; a task renews every claim this storage holds
  at a third of that, with one statement.
- **Following.** :meth:`StorageBase.follow` reads a run's log in pages and waits for more
  (:mod:`._follow`); each committed batch wakes the followers of its runs in this process, and a
  backend that hears of other processes' commits wakes them too.
- **Crash points** (fault injection, as DBOS tests it): ``STEPSTREAM_CRASH_AT=name`` (or
  ``name:n`` for its n-th time) makes the process SIGKILL itself at that named point of a
  storage write; the tests use it to prove recovery from a crash at every write.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import tenacity

from ..errors import RunClaimedError, StorageError
from . import FINAL_STATUSES, Checkpoint, Claim, RunSnapshot, RunSummary, StoredEvent
from ._codec import decode, rebuild_state
from ._follow import Followers, follow_log

__all__ = ["CRASH_POINTS", "Pending", "StorageBase", "Write", "new_owner", "now_ms"]

T = TypeVar("T")
_FIRST_WAIT = 0.05
"""Seconds before the second attempt of a transient failure (then doubling, at most 1 s)."""
log = logging.getLogger("stepstream.storage")

CRASH_POINTS = (
    "claim.before-commit",
    "claim.after-commit",
    "checkpoint.before-commit",
    "checkpoint.after-commit",
    "release.before-commit",
    "recovery.after-claim",
)
"""The named points where ``STEPSTREAM_CRASH_AT`` may kill the process."""


@dataclass(frozen=True)
class Pending:
    """A run to store ``pending`` unless it exists (``Storage.create_pending``)."""

    run_id: str
    workflow_id: str


Write = Checkpoint | Claim | Pending
"""What the writer groups into one transaction."""


def now_ms() -> int:
    """Epoch milliseconds (leases and ``updated_at``)."""
    return time.time_ns() // 1_000_000


def new_owner() -> str:
    """A new owner id: ``host:pid:random``, unique per claiming ``Run`` object."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class StorageBase:
    """Group commit, retries, leases and crash points over a backend's transactions."""

    #: How often a transient failure is tried again before it becomes a StorageError.
    attempts = 5

    #: Seconds a follower waits without a wake-up before it reads the run's head again.
    follow_recheck = 1.0

    def __init__(self, *, lease_seconds: float = 30.0, durability: str = "async") -> None:
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        if durability not in ("async", "sync"):
            raise ValueError(f"durability must be 'async' or 'sync', not {durability!r}")
        self.lease_seconds = lease_seconds
        self.durability = durability
        self._held: dict[str, str] = {}  # run id -> owner, for the claims being executed here
        self._queue: list[tuple[Write, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        crash = os.environ.get("STEPSTREAM_CRASH_AT", "")
        name, _, nth = crash.partition(":")
        self._crash_at = (name, int(nth or 1)) if name else None
        self._crash_seen = 0
        self._followers = Followers()

    # -- what backends implement -----------------------------------------------------------

    async def _claim_now(self, claim: Claim, now: int) -> None:
        raise NotImplementedError

    async def _write_batch(self, batch: Sequence[Write], now: int) -> set[int]:
        """Write the checkpoints, store the pending runs and create the new runs (claims with
        ``create``) in one transaction, pending runs first; return the positions in ``batch``
        that were refused (a checkpoint whose owner no longer holds its run, a run that has
        started already): those are not written, the others are (a pending run that exists
        is not refused: it is left as it is)."""
        raise NotImplementedError

    async def _renew_now(self, held: Sequence[tuple[str, str]], lease_until: int) -> None:
        raise NotImplementedError

    async def _release_now(self, run_id: str, owner: str, now: int) -> None:
        raise NotImplementedError

    def _transient(self, exc: BaseException) -> bool:
        """Whether ``exc`` is worth retrying (lock timeout, lost connection)."""
        raise NotImplementedError

    async def _head_now(self, run_id: str) -> tuple[str, int] | None:
        """The run's stored ``(status, last_seq)``, or ``None`` if it is unknown."""
        raise NotImplementedError

    async def _listening(self) -> None:
        """Make sure other processes' commits wake this storage's followers (a backend that
        can hear them starts listening here; the others rely on ``follow_recheck``)."""

    def read_events(
        self, run_id: str, after_seq: int = -1, *, limit: int | None = None
    ) -> Awaitable[list[StoredEvent]]:
        raise NotImplementedError

    # -- the protocol ----------------------------------------------------------------------

    async def claim(self, claim: Claim) -> None:
        if claim.create is not None:  # a new run: an insert, grouped with the other writes
            await self._grouped(claim)
        else:
            await self._retrying(
                lambda: self._claim_now(claim, now_ms()), f"claim run {claim.run_id}"
            )
        self._held[claim.run_id] = claim.owner
        self._keep_leases()

    async def create_pending(self, run_id: str, workflow_id: str) -> None:
        await self._grouped(Pending(run_id, workflow_id))

    async def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        await self._grouped(checkpoint)
        if checkpoint.release or checkpoint.status != "running":
            self._forget(checkpoint.run_id)

    async def release(self, run_id: str, owner: str) -> None:
        self._forget(run_id)
        await self._retrying(
            lambda: self._release_now(run_id, owner, now_ms()), f"release run {run_id}"
        )

    def follow(
        self,
        run_id: str,
        after_seq: int = -1,
        *,
        through_suspension: bool = False,
        await_creation: bool = False,
    ) -> AsyncIterator[StoredEvent]:
        """The run's stored events after ``after_seq``, then each one as it is committed (by
        this process or, where the backend hears of it, another), until the run is final or
        suspended and every event up to its last was yielded (see :mod:`._follow`)."""
        return follow_log(
            self._followers,
            run_id,
            after_seq,
            read=lambda run, after, limit: self.read_events(run, after, limit=limit),
            head=self._head_now,
            recheck=self.follow_recheck,
            listening=self._listening,
            through_suspension=through_suspension,
            await_creation=await_creation,
        )

    def _forget(self, run_id: str) -> None:
        """Stop renewing ``run_id``'s lease (and the renewing task, once nothing is held)."""
        self._held.pop(run_id, None)
        if not self._held and self._renewer is not None:
            self._renewer.cancel()
            self._renewer = None

    # -- group commit ----------------------------------------------------------------------

    async def _grouped(self, item: Write) -> None:
        """Queue ``item`` for the writer's next transaction and wait until it is committed."""
        loop = asyncio.get_running_loop()
        self._adopt(loop)
        done: asyncio.Future[None] = loop.create_future()
        self._queue.append((item, done))
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._drain(), name="stepstream-storage-writer")
        await done

    async def _drain(self) -> None:
        # Never raises: every outcome goes to the futures of the checkpoints it concerns.
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                lost = await self._retrying(
                    lambda b=batch: self._write_batch([c for c, _ in b], now_ms()),  # type: ignore[misc]
                    "write checkpoints",
                )
            except BaseException as exc:
                if len(batch) == 1 or isinstance(exc, asyncio.CancelledError):
                    _settle(batch, set(), exc)
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    continue
                for one in batch:  # isolate the culprit: the others still get stored
                    try:
                        lost = await self._retrying(
                            lambda o=one: self._write_batch([o[0]], now_ms()),  # type: ignore[misc]
                            "write a checkpoint",
                        )
                        _settle([one], lost, None)
                        self._woken([one[0]] if not lost else [])
                    except Exception as single:
                        _settle([one], set(), single)
                continue
            _settle(batch, lost, None)
            self._woken([c for i, (c, _) in enumerate(batch) if i not in lost])

    def _woken(self, written: Sequence[Write]) -> None:
        """Wake the followers in this process of the runs whose checkpoints were committed."""
        if self._followers:
            for item in written:
                if isinstance(item, Checkpoint):
                    self._followers.wake(item.run_id, item.status, item.last_seq)
                elif isinstance(item, Claim) and item.create is not None:  # a run begins
                    self._followers.wake(item.run_id, "running", -1)

    async def _retrying(self, work: Callable[[], Awaitable[T]], what: str) -> T:
        # The first attempt runs bare: building tenacity's retrying machinery costs more than the
        # Python side of a grouped write (270 us a call under cProfile with 1,000 runs in
        # flight), and almost every write succeeds at once. Only a transient failure brings
        # tenacity in.
        try:
            return await work()
        except (RunClaimedError, StorageError):
            raise
        except Exception as exc:
            if self.attempts <= 1 or not self._transient(exc):
                tried = f" after {self.attempts} attempts" if self._transient(exc) else ""
                raise StorageError(f"storage failed to {what}{tried}: {exc}") from exc
        await asyncio.sleep(_FIRST_WAIT)
        retrying = tenacity.AsyncRetrying(  # the remaining attempts, waits going on doubling
            stop=tenacity.stop_after_attempt(self.attempts - 1),
            wait=tenacity.wait_exponential(multiplier=2 * _FIRST_WAIT, max=1.0),
            retry=tenacity.retry_if_exception(self._transient),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await work()
        except (RunClaimedError, StorageError):
            raise
        except Exception as exc:
            tried = f" after {self.attempts} attempts" if self._transient(exc) else ""
            raise StorageError(f"storage failed to {what}{tried}: {exc}") from exc
        raise AssertionError("unreachable: tenacity re-raises the last error")

    # -- leases ----------------------------------------------------------------------------

    def _adopt(self, loop: asyncio.AbstractEventLoop) -> None:
        """Work on ``loop``: a new event loop (``asyncio.run()`` again) starts afresh, since the
        tasks and futures of the old one cannot be awaited from it."""
        if self._loop is not loop:
            self._loop, self._queue, self._writer, self._renewer = loop, [], None, None

    def _keep_leases(self) -> None:
        loop = asyncio.get_running_loop()
        self._adopt(loop)
        if self._renewer is None or self._renewer.done():
            self._renewer = loop.create_task(self._renew(), name="stepstream-storage-leases")

    async def _renew(self) -> None:
        while self._held:
            await asyncio.sleep(self.lease_seconds / 3)
            held = list(self._held.items())
            if not held:
                return
            try:
                await self._renew_now(held, now_ms() + int(self.lease_seconds * 1000))
            except Exception:  # the next checkpoint finds out whether the lease survived
                log.warning("stepstream: could not renew %d run leases", len(held), exc_info=True)

    async def _stop_background(self) -> None:
        """Release the claims still held, end the lease task (at ``close()``)."""
        for task in (self._renewer,):
            if task is not None and not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._renewer = None
        writer = self._writer
        if writer is not None and not writer.done():
            await asyncio.gather(writer, return_exceptions=True)
        for run_id, owner in list(self._held.items()):
            try:
                await self.release(run_id, owner)
            except Exception:
                log.warning("stepstream: could not release run %s", run_id, exc_info=True)

    # -- crash points ----------------------------------------------------------------------

    def _crash_around(self, claims: bool, checkpoints: bool, when: str) -> None:
        """The crash points of a grouped transaction, ``when`` ``"before"`` or ``"after"`` its
        commit: the claim's if it creates runs, the checkpoint's if it holds checkpoints."""
        if claims:
            self._crash(f"claim.{when}-commit")
        if checkpoints:
            self._crash(f"checkpoint.{when}-commit")

    def _crash(self, point: str) -> None:
        """SIGKILL this process if ``STEPSTREAM_CRASH_AT`` names ``point`` (fault injection)."""
        if self._crash_at is None or self._crash_at[0] != point:
            return
        self._crash_seen += 1
        if self._crash_seen == self._crash_at[1]:
            os.kill(os.getpid(), signal.SIGKILL)


def _settle(
    batch: Sequence[tuple[Write, asyncio.Future[None]]],
    lost: set[int],
    error: BaseException | None,
) -> None:
    for i, (checkpoint, done) in enumerate(batch):
        if done.done():  # its run was canceled while waiting: nobody wants the answer
            continue
        if error is not None:
            done.set_exception(error)
        elif i in lost and isinstance(checkpoint, Claim):
            done.set_exception(
                RunClaimedError(
                    f"run {checkpoint.run_id} already exists and has started",
                    run_id=checkpoint.run_id,
                )
            )
        elif i in lost and isinstance(checkpoint, Checkpoint):
            done.set_exception(
                RunClaimedError(
                    f"run {checkpoint.run_id} is no longer held by this execution "
                    f"({checkpoint.owner}): its lease expired and another claimed it",
                    run_id=checkpoint.run_id,
                )
            )
        else:
            done.set_result(None)


def effective_status(status: str, lease_until: int, now: int, owner: str | None) -> str:
    """A stored status as readers see it: a ``running`` run whose lease expired, or whose
    owner was a process of this host that is gone, is ``interrupted``."""
    if status == "running" and (lease_until < now or not owner_alive(owner)):
        return "interrupted"
    return status


def owner_alive(owner: str | None) -> bool:
    """Whether ``owner`` (``host:pid:id``) may still be executing: ``False`` only when it is
    nobody, or a process of this host that no longer exists (so a restarted server recovers
    its runs at once instead of waiting for their leases; other hosts' owners are judged by
    their leases alone)."""
    if owner is None:
        return False
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists but is not ours to signal
        return True
    return True


def claim_refusal(
    claim: Claim, row: tuple[str, str | None, int, int] | None, now: int
) -> RunClaimedError | None:
    """Why ``claim`` may not take the run whose stored ``(status, owner, lease_until,
    last_seq)`` is ``row`` (``None``: unknown), or ``None`` when it may."""
    run = f"run {claim.run_id}"
    if claim.create is not None:
        if row is not None and row[0] != "pending":  # a pending run: created, not started
            return RunClaimedError(
                f"{run} already exists and has started", run_id=claim.run_id, owner=row[1]
            )
        return None
    if row is None:
        return RunClaimedError(f"{run} is unknown to the storage", run_id=claim.run_id)
    status, owner, lease_until, last_seq = row
    seen = effective_status(status, lease_until, now, owner)
    if seen == "running" and owner != claim.owner:
        return RunClaimedError(
            f"{run} is being executed by {owner} (lease until {lease_until})",
            run_id=claim.run_id,
            owner=owner,
        )
    if seen not in claim.expect and not (seen == "running" and owner == claim.owner):
        why = "has ended" if seen in FINAL_STATUSES else "is"
        return RunClaimedError(
            f"{run} {why} {seen!r}; expected {' or '.join(claim.expect) or 'nothing'}",
            run_id=claim.run_id,
        )
    if claim.expect_seq is not None and last_seq != claim.expect_seq:
        return RunClaimedError(
            f"{run} changed in storage since this Run saw it (its last seq is {last_seq}, "
            f"not {claim.expect_seq}): load it again",
            run_id=claim.run_id,
        )
    return None


def stored_statuses(statuses: Sequence[str]) -> list[str]:
    """The stored statuses to select for the statuses readers see (``interrupted`` and
    ``running`` runs are both stored ``running``; :func:`summaries` tells them apart)."""
    return sorted({"running" if s == "interrupted" else s for s in statuses})


def summaries(
    rows: Sequence[tuple[str, str, str, str | None, int, int]],
    statuses: Sequence[str] | None,
    now: int,
) -> list[RunSummary]:
    """``(run_id, workflow_id, status, owner, lease_until, updated_at)`` rows as summaries
    with their effective status, keeping those in ``statuses`` (all when ``None``)."""
    out = []
    for run_id, workflow_id, status, owner, lease_until, updated_at in rows:
        seen = effective_status(status, lease_until, now, owner)
        if statuses is None or seen in statuses:
            out.append(RunSummary(run_id, workflow_id, seen, updated_at))
    return out


def snapshot_of(run_id: str, head: Sequence[Any], rows: Sequence[Any]) -> RunSnapshot:
    """A run as loaded: its head row (the runs table's columns after ``run_id``, JSON as
    text) and its ``(kind, key, order, data)`` records, as :class:`RunSnapshot`."""
    (workflow_id, status, input_json, context, meta, result, error, suspended, last_seq,
     owner, lease_until, created_at, updated_at) = head  # fmt: skip
    meta_data = decode(meta)
    return RunSnapshot(
        run_id=run_id,
        workflow_id=workflow_id,
        status=effective_status(status, lease_until, now_ms(), owner),
        state=rebuild_state(decode(input_json), meta_data, rows),
        result=decode(result),
        error=error,
        suspended=decode(suspended),
        runtime_context=decode(context),
        last_seq=last_seq,
        updated_at=updated_at,
        owner=owner,
        lease_until=lease_until,
        created_at=created_at,
        meta=meta_data,
    )
