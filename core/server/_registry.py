"""The server's runs: the bounded set of live ``Run`` objects, stored ones loaded on demand.

A run stays in memory while it may act or be followed: while it runs, and while a response
streams it or background work uses it. Otherwise (never started, ended, suspended,
interrupted) it leaves memory once it has been idle for ``idle_timeout`` seconds, checked at
each request; storage keeps everything that was ever stored, and a suspended or ended run is
loaded again when asked for. A run created by ``create-run`` is stored ``pending`` at once
(``Workflow.create_run``), so any instance may start it: one that leaves memory before it
starts is loaded again, still pending, by the next request for it, and storage lists it as
``pending`` until it starts (``Storage.prune(statuses=("pending",))`` removes those left
unstarted). Of two instances asked to start it at once, one does and the other answers 409,
as a second start in one process does. At most ``max_live`` runs are kept: past that, the
longest idle of those that may leave do so at once, and when none may, ``create-run``
answers 503.

A run that another process executes on the same storage is handed out as a
:class:`~stepstream.server._remote.RemoteRun` (followed through the stored log, controlled by
messages to its owner), never kept here; a kept copy of a run that is not executing here is
read from storage again at each request, since another process may have moved it on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import RunStateError
from ..plugin_manager import PluginManager
from ..recovery import keep_recovering
from ..run import Run
from ..status import is_final
from ..storage import Storage
from ..workflow import Workflow
from ._queue import Claimer
from ._remote import RemoteRun, answer_controls
from ._wire import Problem

log = logging.getLogger("stepstream.server")

DEFAULT_IDLE_TIMEOUT = 300.0
"""Seconds an idle run stays in memory (see the module docstring)."""

DEFAULT_MAX_LIVE = 10_000
"""The most runs kept in memory at once."""


@dataclass
class _Live:
    run: Run
    touched: float
    holders: int = 0


class Runs:
    """The server's runs (see the module docstring)."""

    def __init__(
        self,
        workflows: Mapping[str, Workflow],
        storage: Storage,
        pm: PluginManager,
        *,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        max_live: int = DEFAULT_MAX_LIVE,
        max_runs: int = 0,
    ) -> None:
        self.workflows = dict(workflows)
        self.storage = storage
        self.pm = pm
        self.idle_timeout = idle_timeout
        self.max_live = max_live
        self.entries: dict[tuple[str, str], _Live] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self._swept = time.monotonic()
        self.max_runs = max_runs
        """The most runs this instance executes at once (0: no limit); see ``_queue``."""
        self.claimer = Claimer(self)
        on_control = getattr(storage, "on_control", None)
        if on_control is not None:  # other processes' cancel, resume and send-event reach us
            on_control(answer_controls(self))

    @property
    def live(self) -> dict[tuple[str, str], Run]:
        """The runs in memory now, by (workflow key, run id)."""
        return {k: e.run for k, e in self.entries.items()}

    def workflow(self, key: str) -> Workflow:
        found = self.workflows.get(key)
        if found is None:
            raise Problem(404, "Workflow not found")
        return found

    async def create(
        self, key: str, run_id: str | None, *, pending: bool = False
    ) -> Run | RemoteRun:
        """The run ``run_id`` (live, or stored: never run twice), or a new one.

        :param pending: Store a new run ``pending`` (``create-run``: another request, on any
            instance, starts it). Without it a new run is for a start that follows at once
            (``start-async``, ``stream``, a queued start), whose claim stores it: a start
            refused for its input stores nothing.
        """
        wf = self.workflow(key)
        self.sweep()
        if run_id:
            found = await self._find(key, wf, run_id)
            if found is not None:
                return found
        if len(self.entries) >= self.max_live:
            self.sweep(force=True)
            if len(self.entries) >= self.max_live:
                raise Problem(503, f"the server holds {self.max_live} live runs; try later")
        if pending:
            run = await wf.create_run(run_id or None, plugin_manager=self.pm, storage=self.storage)
        else:
            stored = await self.storage.load_run(run_id) if run_id else None
            if stored is not None and stored.workflow_id != wf.id:  # never overwritten
                raise RunStateError(
                    f"run {run_id} is of workflow {stored.workflow_id!r}", run_id=run_id
                )
            run = wf._unstored_run(run_id or None, plugin_manager=self.pm, storage=self.storage)
        return self._keep(key, run)

    async def get(self, key: str, run_id: str, *, follow: bool = False) -> Run | RemoteRun:
        """The run ``run_id``, live or stored; 404 if neither.

        :param follow: For a route that only follows the run (SSE, watch): a run that has not
            started is followed through its stored log (a :class:`RemoteRun`), which goes on
            once any instance starts it, instead of through a copy here that only sees a
            start made here.
        """
        wf = self.workflow(key)
        self.sweep()
        found = await self._find(key, wf, run_id)
        if found is None:
            raise Problem(404, "Workflow run not found")
        if follow and isinstance(found, Run) and found.status == "pending":
            snapshot = await self.storage.load_run(run_id)
            if snapshot is not None and not found.executing:
                return RemoteRun(wf, self.storage, snapshot, lambda: self.get(key, run_id))
        return found

    async def _find(self, key: str, wf: Workflow, run_id: str) -> Run | RemoteRun | None:
        entry = self.entries.get((key, run_id))
        if entry is not None:
            entry.touched = time.monotonic()
            if _current(entry):
                return entry.run
        try:
            run = await wf.load_run(run_id, storage=self.storage, plugin_manager=self.pm)
        except RunStateError:
            # Unknown to storage: made here for a start not stored yet, or pruned.
            return entry.run if entry is not None else None
        if run.status == "running":  # a fresh copy that runs: it executes in another process
            snapshot = await self.storage.load_run(run_id)
            if snapshot is not None and snapshot.status == "running":
                if entry is not None and entry.holders == 0 and not entry.run.executing:
                    self._forget(key, run_id)
                return RemoteRun(wf, self.storage, snapshot, lambda: self.get(key, run_id))
        entry = self.entries.get((key, run_id))  # loaded meanwhile by another request
        if entry is not None and (_current(entry) or _same(entry.run, run)):
            # Nothing moved on elsewhere: requests share the one copy, so a follower that
            # took it a moment ago sees what a resume through another request executes.
            return entry.run
        return self._keep(key, run)

    def executing_here(self, run_id: str) -> tuple[str, Run] | None:
        """The key and run of ``run_id`` if it executes in this process (control messages)."""
        for (key, found), entry in self.entries.items():
            if found == run_id and entry.run.executing:
                return key, entry.run
        return None

    def _keep(self, key: str, run: Run) -> Run:
        self.entries[(key, run.run_id)] = _Live(run, time.monotonic())
        return run

    def settle(self, key: str, run: Run | RemoteRun) -> None:
        """An ended run nobody streams leaves memory now (storage keeps it)."""
        entry = self.entries.get((key, run.run_id))
        if entry is not None and entry.holders == 0 and is_final(run.status):
            self._forget(key, run.run_id)

    def sweep(self, *, force: bool = False) -> None:
        """Let idle runs leave memory (``force``: every run that may leave, idle or not)."""
        now = time.monotonic()
        if not force and now - self._swept < min(self.idle_timeout / 4, 1.0):
            return
        self._swept = now
        for (key, run_id), entry in list(self.entries.items()):
            idle = now - entry.touched >= self.idle_timeout
            # Not executing here: a run that failed to claim its start (another process
            # took it) leaves too, though it reads "running".
            if entry.holders == 0 and not entry.run.executing and (force or idle):
                self._forget(key, run_id)

    def forget(self, key: str, run: Run | RemoteRun) -> None:
        """Drop ``run`` from memory unless it runs here (a stale copy of a run another
        process executes): the next request loads it from storage again."""
        entry = self.entries.get((key, run.run_id))
        if entry is not None and entry.run is run and entry.holders == 0 and not run.executing:
            self._forget(key, run.run_id)

    def _forget(self, key: str, run_id: str) -> None:
        self.entries.pop((key, run_id))

    @contextlib.asynccontextmanager
    async def holding(self, key: str, run: Run | RemoteRun) -> AsyncIterator[_Live]:
        """Keep ``run`` in memory while the block runs (a response streaming it); a remote
        run is not kept (storage holds it)."""
        if isinstance(run, RemoteRun):
            yield _Live(run, time.monotonic())  # type: ignore[arg-type]
            return
        entry = self.entries.get((key, run.run_id))
        if entry is None or entry.run is not run:
            entry = self.entries[(key, run.run_id)] = _Live(run, time.monotonic())
        entry.holders += 1
        try:
            yield entry
        finally:
            entry.holders -= 1
            entry.touched = time.monotonic()
            self.settle(key, run)

    def background(self, work: Awaitable[Any], key: str, run: Run | RemoteRun) -> None:
        """Run ``work`` after the response; its failure is logged, the run then settled."""

        async def held() -> Any:
            async with self.holding(key, run):
                return await work

        task = asyncio.ensure_future(held())
        self.tasks.add(task)

        def done(task: asyncio.Future[Any]) -> None:
            self.tasks.discard(task)
            self.claimer.wake()  # room for a queued run, maybe
            if not task.cancelled() and task.exception() is not None:
                log.error("background work on run %s failed", run.run_id, exc_info=task.exception())

        task.add_done_callback(done)

    def adopt(self, run: Run) -> None:
        """Keep a run that recovery took up here, until it ends (see :meth:`recovering`)."""
        keys = [k for k, wf in self.workflows.items() if wf.id == run.workflow.id]
        if keys:
            self._keep(keys[0], run)
            self.background(run.wait(), keys[0], run)

    async def recovering(self) -> None:
        """Take up the interrupted runs of these workflows now and as leases expire (until
        canceled): a restarted server finishes the runs its previous process left."""
        await keep_recovering(
            self.workflows.values(), self.storage, plugin_manager=self.pm, taken=self.adopt
        )

    async def shutdown(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for background work, then close the storage.

        Runs still running after that are not canceled: each is let go where it stands
        (``Run.abandon()``), stored as ``interrupted``, and the next server process on the
        same storage (or another one sharing it) takes it up and finishes it.
        """
        if self.tasks:
            _, pending = await asyncio.wait(set(self.tasks), timeout=grace)
            if pending:
                log.warning("shutting down with %d runs still at work", len(pending))
        running = [e.run for e in self.entries.values() if e.run.executing]
        if running:
            log.warning(
                "stopping: %d runs left interrupted, for the next server on this storage to "
                "finish: %s", len(running), ", ".join(r.run_id for r in running)
            )  # fmt: skip
        for run in running:
            try:
                await run.abandon()
            except Exception:
                log.warning("could not leave run %s interrupted", run.run_id, exc_info=True)
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        for key, run_id in list(self.entries):
            self._forget(key, run_id)
        await self.storage.close()


def _current(entry: _Live) -> bool:
    """Whether a kept run is up to date as it is: it executes here or has ended (anything
    else, a pending run too, may have moved on in another process, even while a response
    follows it from here: its hub follows the stored log then, see :mod:`stepstream.hub`)."""
    run = entry.run
    return run.executing or is_final(run.status)


def _same(kept: Run, loaded: Run) -> bool:
    """Whether a kept copy still says what storage says (same status, same last event)."""
    return kept.status == loaded.status and kept.last_seq == loaded.last_seq
