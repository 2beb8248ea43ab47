"""The routes that act on a run: create, start, resume, cancel, send an event, fork.

Each answers once the run has taken the request (created, started and stored, claimed for the
resume, canceled, handed the event, forked); what the run then does goes on in the background
(``Runs.background``), except in the ``-async`` routes, which answer with the run's result.
(Module-level functions over ``request.app.state``: see ``_request``.)
"""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.requests import Request
from starlette.responses import Response

from .._time_travel import time_travel
from ..errors import InputValidationError, RunClaimedError, RunStateError, TimeTravelError
from ..result import WorkflowResult
from ..run import Run
from ._following import ENDED
from ._models import ResumeBody, SendEventBody, StartBody, TimeTravelBody, read_body
from ._queue import full, queue_start
from ._remote import RemoteRun
from ._request import check_input, key, path_run_id, query_run_id, served, stored
from ._wire import JSON, Problem

__all__ = [
    "cancel",
    "create_run",
    "fork",
    "resume_async",
    "resume_now",
    "send_event",
    "start",
    "start_async",
]


async def create_run(request: Request) -> Response:
    """``POST .../create-run``: a new run (or the one ``runId`` names), not started."""
    runs = served(request).runs
    run = await runs.create(key(request), query_run_id(request, required=False), pending=True)
    return JSON({"runId": run.run_id})


def starting(run: Run | RemoteRun, body: StartBody) -> Awaitable[WorkflowResult]:
    """The run's start, once its body is checked (4xx otherwise)."""
    check_input(run.workflow, body.input_data)
    if isinstance(run, RemoteRun) or run.status != "pending":
        raise Problem(409, f"run {run.run_id} has already started")
    return run.start(body.input_data, body.context())


async def start(request: Request) -> Response:
    """``POST .../start``: start a created run; answered once it is stored as started."""
    runs = served(request).runs
    run_id = query_run_id(request, required=True)
    body = await read_body(request, StartBody)
    run = await runs.get(key(request), str(run_id))
    if full(runs) and isinstance(run, Run) and run.status == "pending":  # issue 16's seam
        check_input(run.workflow, body.input_data)
        await queue_start(runs, key(request), run, body.input_data, body.context(), wait=False)
        return JSON({"message": "Workflow run started"})
    runs.background(starting(run, body), key(request), run)
    await run.started()  # stored before answering: a client may ask for it at once
    return JSON({"message": "Workflow run started"})


async def start_async(request: Request) -> Response:
    """``POST .../start-async``: create (or take) a run and run it to its end: its result."""
    runs = served(request).runs
    run_id = query_run_id(request, required=False)
    body = await read_body(request, StartBody)
    run = await runs.create(key(request), run_id)
    if full(runs) and isinstance(run, Run) and run.status == "pending":  # issue 16's seam
        check_input(run.workflow, body.input_data)
        queued = await queue_start(
            runs, key(request), run, body.input_data, body.context(), wait=True
        )
        if queued is None:
            raise Problem(500, f"run {run.run_id} ended without a result")
        return JSON(queued.to_wire())
    result = await starting(run, body)
    runs.settle(key(request), run)
    return JSON(result.to_wire())


async def _resume(request: Request, *, wait: bool) -> Response:
    runs = served(request).runs
    run_id = query_run_id(request, required=True)
    body = await read_body(request, ResumeBody)
    run = await runs.get(key(request), str(run_id))
    if not body.step:
        raise Problem(400, "step required to resume workflow")
    try:
        # Checked and claimed before answering: of two servers asked at once, one answers
        # 409 (the run is the other's), and the step runs once.
        work = await run.resuming(body.step, body.resume_data, body.context())
    except RunClaimedError as exc:
        runs.forget(key(request), run)  # stale here: the next request loads it afresh
        raise Problem(409, str(exc)) from None
    except RunStateError as exc:
        raise Problem(409, str(exc)) from None
    if not wait:
        runs.background(work, key(request), run)
        return JSON({"message": "Workflow run resumed"})
    result = await work
    runs.settle(key(request), run)
    return JSON(result.to_wire())


async def resume_now(request: Request) -> Response:
    """``POST .../resume``: resume a suspended step; answered once the resume is claimed."""
    return await _resume(request, wait=False)


async def resume_async(request: Request) -> Response:
    """``POST .../resume-async``: resume a suspended step and answer with the run's result."""
    return await _resume(request, wait=True)


async def cancel(request: Request) -> Response:
    """``POST .../runs/{runId}/cancel``: cancel a run (409 if another process holds it)."""
    runs = served(request).runs
    run = await runs.get(key(request), path_run_id(request))
    try:
        await run.cancel()
    except RunClaimedError as exc:  # executing in another server process
        runs.forget(key(request), run)
        raise Problem(409, str(exc)) from None
    runs.settle(key(request), run)
    return JSON({"message": "Workflow run cancelled"})


async def send_event(request: Request) -> Response:
    """``POST .../runs/{runId}/send-event``: hand an event to a run that has not ended."""
    runs = served(request).runs
    run_id = path_run_id(request)
    body = await read_body(request, SendEventBody)
    run = await runs.get(key(request), run_id)
    if run.status in ENDED:
        raise Problem(409, f"run {run.run_id} has ended ({run.status})")
    runs.background(run.send_event(body.event, body.data), key(request), run)
    return JSON({"message": "Workflow run event sent"})


async def fork(request: Request) -> Response:
    """``POST .../runs/{runId}/time-travel``: fork a stored run at a step into a new run,
    started at once and kept here until it ends."""
    runs = served(request).runs
    body = await read_body(request, TimeTravelBody)
    source = await stored(request)  # 404 for a run unknown to this workflow
    edited = "input_data" in body.model_fields_set
    try:
        run = await time_travel(
            runs.workflow(key(request)),
            source.run_id,
            step=body.step,
            replay_models=body.replay_models,
            storage=runs.storage,
            plugin_manager=runs.pm,
            **({"input_data": body.input_data} if edited else {}),
        )
    except InputValidationError as exc:
        raise Problem(400, f"inputData is invalid: {exc}") from None
    except TimeTravelError as exc:
        raise Problem(409, str(exc)) from None
    runs.adopt(run)  # kept here until it ends, as a recovered run is
    return JSON({"runId": run.run_id, "message": "Workflow run forked"})
