"""The server's runs, and the request/response helpers its routes share."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Mapping
from typing import Any

from starlette.requests import Request

from ..context import RuntimeContext
from ..errors import RunStateError, StepstreamError
from ..events import Event
from ..plugin_manager import PluginManager
from ..result import RunState, steps_wire
from ..run import Run
from ..storage import RunSnapshot, Storage
from ..workflow import Workflow

log = logging.getLogger("stepstream.server")

RS = "\x1e"  # Mastra's record separator between JSON records


class _Problem(Exception):
    """An HTTP error answered as ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Runs:
    """The server's runs: live ``Run`` objects, and stored ones loaded on demand."""

    def __init__(
        self, workflows: Mapping[str, Workflow], storage: Storage, pm: PluginManager
    ) -> None:
        self.workflows = dict(workflows)
        self.storage = storage
        self.pm = pm
        self.live: dict[tuple[str, str], Run] = {}
        self.tasks: set[asyncio.Task[Any]] = set()

    def workflow(self, key: str) -> Workflow:
        found = self.workflows.get(key)
        if found is None:
            raise _Problem(404, "Workflow not found")
        return found

    async def create(self, key: str, run_id: str | None) -> Run:
        """The run ``run_id`` (live, or stored: never run twice), or a new one."""
        wf = self.workflow(key)
        if run_id:
            if (key, run_id) in self.live:
                return self.live[(key, run_id)]
            try:
                run = await wf.load_run(run_id, storage=self.storage, plugin_manager=self.pm)
            except RunStateError:
                pass  # unknown: made below with that id
            else:
                self.live[(key, run_id)] = run
                return run
        run = await wf.create_run(run_id or None, plugin_manager=self.pm, storage=self.storage)
        self.live[(key, run.run_id)] = run
        return run

    def settle(self, key: str, run: Run) -> None:
        """Forget an ended run (storage keeps it): the live set holds only runs that may act."""
        if run.status in ("success", "failed", "canceled"):
            self.live.pop((key, run.run_id), None)

    async def get(self, key: str, run_id: str | None) -> Run:
        wf = self.workflow(key)
        if not run_id:
            raise _Problem(400, "runId required")
        run = self.live.get((key, run_id))
        if run is not None:
            return run
        try:
            run = await wf.load_run(run_id, storage=self.storage, plugin_manager=self.pm)
        except RunStateError:
            raise _Problem(404, "Workflow run not found") from None
        self.live[(key, run_id)] = run
        return run

    def background(self, work: Awaitable[Any], key: str, run: Run) -> None:
        """Run ``work`` after the response; its failure is logged, the run then settled."""
        task = asyncio.ensure_future(work)
        self.tasks.add(task)

        def done(task: asyncio.Future[Any]) -> None:
            self.tasks.discard(task)
            if not task.cancelled() and task.exception() is not None:
                log.error("background work on run %s failed", run.run_id, exc_info=task.exception())
            self.settle(key, run)

        task.add_done_callback(done)


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise _Problem(400, f"invalid JSON body: {exc}") from None
    if not isinstance(data, dict):
        raise _Problem(400, "the JSON body must be an object")
    return data


def _context(body: dict[str, Any]) -> RuntimeContext | None:
    values = body.get("runtimeContext")
    if values is None:
        return None
    if not isinstance(values, dict):
        raise _Problem(400, "runtimeContext must be an object")
    return RuntimeContext(values)


def _check_input(wf: Workflow, data: Any) -> None:
    try:
        wf.parse_input(data)
    except StepstreamError as exc:
        raise _Problem(400, f"inputData is invalid: {exc}") from None


def _record(event: Event) -> bytes:
    return (json.dumps(event.to_wire()) + RS).encode()


def _stored_run(key: str, snapshot: RunSnapshot) -> dict[str, Any]:
    stamp = _iso(snapshot.updated_at)
    return {
        "workflowName": key,
        "runId": snapshot.run_id,
        "snapshot": {
            "runId": snapshot.run_id,
            "status": snapshot.status,
            "context": _steps_wire(snapshot),
            "suspended": snapshot.suspended,
            "result": snapshot.result,
            "error": snapshot.error,
            "runtimeContext": snapshot.runtime_context,
            "timestamp": snapshot.updated_at,
        },
        "createdAt": stamp,
        "updatedAt": stamp,
    }


def _steps_wire(snapshot: RunSnapshot) -> dict[str, Any]:
    state = RunState.from_json(snapshot.state)
    return steps_wire(state.input, state.steps)


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"
