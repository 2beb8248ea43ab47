"""The routes that stream a run: ``stream`` (run it, sending its events), ``watch`` (Mastra's
watch records) and ``events`` (Server-Sent Events, resumable by sequence number).

A response that streams a live run holds it in memory while it streams (``Runs.holding``); a
run executing in another process is followed through its stored log instead. How the events
reach the client (coalesced writes, followers that never slow a run) is ``_following``'s part.
(Module-level functions over ``request.app.state``: see ``_request``.)
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..errors import StepstreamError
from ..events import Event
from ..run import Run
from ._following import Streamed, coalesce, follow, watch_records
from ._models import StartBody, read_body
from ._registry import Runs
from ._remote import RemoteRun, remote_watch
from ._request import check_input, key, path_run_id, query_run_id, served
from ._wire import Problem, dumps, seq_param

__all__ = ["sse", "stream", "watch"]

RS = "\x1e"  # Mastra's record separator between JSON records


async def stream(request: Request) -> Response:
    """``POST .../stream``: create (or take) a run and run it, streaming its events as
    ``RS``-separated JSON records; the run's pace is the client's (its stream's buffer)."""
    runs = served(request).runs
    run_id = query_run_id(request, required=False)
    body = await read_body(request, StartBody)
    run = await runs.create(key(request), run_id)
    if run.status == "pending":
        check_input(run.workflow, body.input_data)
    try:
        events = run.stream(body.input_data, body.context())
    except StepstreamError as exc:
        raise Problem(409, str(exc)) from None
    records = _held(runs, key(request), run, _records(events))
    return Streamed(coalesce(records), media_type="text/plain; charset=UTF-8")


async def watch(request: Request) -> Response:
    """``GET .../watch``: Mastra's watch records of a run, from now to its end or suspension."""
    runs = served(request).runs
    run = await runs.get(key(request), str(query_run_id(request, required=True)), follow=True)
    record = functools.partial(_watch_record, run)
    if isinstance(run, RemoteRun):  # executing in another process (issue 16's seam)
        records = remote_watch(run, record)
    else:
        records = watch_records(run, record)
    return Streamed(_held(runs, key(request), run, records), media_type="text/plain; charset=UTF-8")


async def sse(request: Request) -> Response:
    """``GET .../runs/{runId}/events``: follow a run as Server-Sent Events from after
    ``Last-Event-ID`` (or ``?after=``), pinged while it is quiet, until its end; a run
    executing in another process is followed through its stored log."""
    app = served(request)
    run_id = path_run_id(request)
    header = request.headers.get("last-event-id")
    raw = header or request.query_params.get("after") or "-1"
    after = seq_param(raw, "Last-Event-ID" if header else "after")
    run = await app.runs.get(key(request), run_id, follow=True)
    frames = _held(app.runs, key(request), run, follow(run, after, app.keepalive, app.frames))
    return Streamed(
        coalesce(frames),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _held(
    runs: Runs, key: str, run: Run | RemoteRun, chunks: AsyncIterator[bytes]
) -> AsyncIterator[bytes]:
    """``chunks``, with ``run`` kept in memory while they stream (a run executing in another
    process is not kept: storage holds it)."""
    async with runs.holding(key, run):
        async for chunk in chunks:
            yield chunk


async def _records(events: AsyncIterable[Event]) -> AsyncIterator[bytes]:
    async for event in events:
        yield (dumps(event.to_wire()) + RS).encode()


def _watch_record(run: Run | RemoteRun, event: Event | None) -> bytes:
    """One watch record: the run's state, with the step ``event`` is about (``None``: the
    final record)."""
    state = run.current_state()
    payload: dict[str, Any] = {"workflowState": state}
    step_id = getattr(event, "step_id", None)
    if event is not None and event.type == "step-start":
        # The step as it was at this event: running (the state may be further on).
        started = event.to_wire()["payload"]
        payload = {"currentStep": started, **payload}
    elif step_id is not None and step_id in state["steps"]:
        payload = {"currentStep": {"id": step_id, **state["steps"][step_id]}, **payload}
    body = {
        "type": "watch",
        "payload": payload,
        "eventTimestamp": int(time.time() * 1000),
        "runId": run.run_id,
    }
    # Mastra's watch sends each record as a JSON string holding JSON.
    return (dumps(dumps(body)) + RS).encode()
