"""The routes of the stepstream HTTP server (see the package docstring)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .._scope import resolve_path
from ..errors import RunStateError, StepstreamError
from ..events import Event
from ..plugin_manager import PluginManager, get_plugin_manager
from ..result import WorkflowResult
from ..run import Run
from ..storage import RunSnapshot, Storage
from ..storage.sqlite import SQLiteStorage
from ..workflow import Workflow
from ._registry import (
    RS,
    _body,
    _check_input,
    _context,
    _Problem,
    _record,
    _Runs,
    _steps_wire,
    _stored_run,
)
from ._serving import _BearerAuth, serve, serve_in_thread
from .describe import workflow_info

__all__ = ["create_app", "serve", "serve_in_thread"]


def create_app(
    workflows: Mapping[str, Workflow],
    *,
    storage: Storage | None = None,
    token: str | None = None,
    plugin_manager: PluginManager | None = None,
) -> Starlette:
    """An ASGI app serving ``workflows`` (registration key -> committed workflow).

    :param storage: Where runs are kept; an in-memory SQLite store by default.
    :param token: When given, every ``/api`` request needs ``Authorization: Bearer <token>``.
    :param plugin_manager: The manager of every run; a fresh default one otherwise.
    """
    runs = _Runs(
        workflows, storage or SQLiteStorage(":memory:"), plugin_manager or get_plugin_manager()
    )

    def key(request: Request) -> str:
        return str(request.path_params["workflow_id"])

    async def list_workflows(request: Request) -> Response:
        return JSONResponse(
            {k: workflow_info(wf, for_list=True) for k, wf in runs.workflows.items()}
        )

    async def describe(request: Request) -> Response:
        return JSONResponse(workflow_info(runs.workflow(key(request))))

    async def create_run(request: Request) -> Response:
        run = await runs.create(key(request), request.query_params.get("runId"))
        return JSONResponse({"runId": run.run_id})

    async def starting(request: Request, run: Run) -> Awaitable[WorkflowResult]:
        """The run's start, once the body is read and checked (4xx otherwise)."""
        body = await _body(request)
        _check_input(run.workflow, body.get("inputData"))
        if run.status != "pending":
            raise _Problem(409, f"run {run.run_id} has already started")
        return run.start(body.get("inputData"), _context(body))

    async def start(request: Request) -> Response:
        run = await runs.get(key(request), request.query_params.get("runId"))
        runs.background(await starting(request, run), key(request), run)
        return JSONResponse({"message": "Workflow run started"})

    async def start_async(request: Request) -> Response:
        run = await runs.create(key(request), request.query_params.get("runId"))
        result = await (await starting(request, run))
        runs.settle(key(request), run)
        return JSONResponse(result.to_wire())

    async def stream(request: Request) -> Response:
        run = await runs.create(key(request), request.query_params.get("runId"))
        body = await _body(request)
        if run.status == "pending":
            _check_input(run.workflow, body.get("inputData"))
        try:
            events = run.stream(body.get("inputData"), _context(body))
        except StepstreamError as exc:
            raise _Problem(409, str(exc)) from None

        async def records() -> AsyncIterator[bytes]:
            try:
                async for event in events:
                    yield _record(event)
            finally:
                runs.settle(key(request), run)

        return StreamingResponse(records(), media_type="text/plain; charset=UTF-8")

    async def watch(request: Request) -> Response:
        run = await runs.get(key(request), request.query_params.get("runId"))
        queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=256)
        unwatch = run.watch(queue.put)

        def record(event: Event | None) -> bytes:
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
            return (json.dumps(json.dumps(body)) + RS).encode()

        async def records() -> AsyncIterator[bytes]:
            try:
                while True:
                    if queue.empty() and run.status not in ("pending", "running"):
                        yield record(None)  # the final state (also at a suspension)
                        return
                    getter = asyncio.ensure_future(queue.get())
                    waiting: set[asyncio.Future[Any]] = {getter}
                    if run.status == "running":
                        waiting.add(asyncio.ensure_future(run.wait()))
                    try:
                        done, _ = await asyncio.wait(waiting, return_when="FIRST_COMPLETED")
                    finally:  # also when the client leaves: nothing may be left waiting
                        for future in waiting:
                            if not future.done():
                                future.cancel()
                    if getter in done:
                        event = getter.result()
                        yield record(event)
                        if event.type == "finish":
                            return
            finally:
                unwatch()
                _drain(queue)

        return StreamingResponse(records(), media_type="text/plain; charset=UTF-8")

    async def resume(request: Request, *, wait: bool) -> Response:
        run = await runs.get(key(request), request.query_params.get("runId"))
        body = await _body(request)
        step = body.get("step")
        if not step:
            raise _Problem(400, "step required to resume workflow")
        if not isinstance(step, str | list) or (
            isinstance(step, list) and not all(isinstance(s, str) for s in step)
        ):
            raise _Problem(400, "step must be a step id or a list of step ids")
        if run.status == "running":
            await run.wait()  # a client resuming right after `step-suspended`
        if run.status != "suspended" or run.result is None:
            raise _Problem(409, f"run {run.run_id} is not suspended (status {run.status!r})")
        try:
            resolve_path(step, run.result.suspended, run.run_id)  # 409 now, not in background
        except RunStateError as exc:
            raise _Problem(409, str(exc)) from None
        work = run.resume(step, body.get("resumeData"), _context(body))
        if not wait:
            runs.background(work, key(request), run)
            return JSONResponse({"message": "Workflow run resumed"})
        try:
            result = await work
        except RunStateError as exc:
            raise _Problem(409, str(exc)) from None
        runs.settle(key(request), run)
        return JSONResponse(result.to_wire())

    async def resume_now(request: Request) -> Response:
        return await resume(request, wait=False)

    async def resume_async(request: Request) -> Response:
        return await resume(request, wait=True)

    async def list_runs(request: Request) -> Response:
        wf = runs.workflow(key(request))
        try:
            limit = int(request.query_params.get("limit", 100))
            offset = int(request.query_params.get("offset", 0))
        except ValueError:
            raise _Problem(400, "limit and offset must be numbers") from None
        found = await runs.storage.list_runs(workflow_id=wf.id, limit=limit + offset)
        page = found[offset:]
        snapshots = [await runs.storage.load_run(r.run_id) for r in page]
        items = [_stored_run(key(request), s) for s in snapshots if s is not None]
        return JSONResponse({"runs": items, "total": len(found)})

    async def stored(request: Request) -> RunSnapshot:
        wf = runs.workflow(key(request))
        snapshot = await runs.storage.load_run(str(request.path_params["run_id"]))
        if snapshot is None or snapshot.workflow_id != wf.id:
            raise _Problem(404, "Workflow run not found")
        return snapshot

    async def run_by_id(request: Request) -> Response:
        return JSONResponse(_stored_run(key(request), await stored(request)))

    async def execution_result(request: Request) -> Response:
        snapshot = await stored(request)
        steps = _steps_wire(snapshot)
        out: dict[str, Any] = {"status": snapshot.status}
        if snapshot.status == "success":
            out["result"] = snapshot.result
        if snapshot.error is not None:
            out["error"] = snapshot.error
        out["payload"] = steps["input"]
        out["steps"] = steps
        return JSONResponse(out)

    async def cancel(request: Request) -> Response:
        run = await runs.get(key(request), str(request.path_params["run_id"]))
        await run.cancel()
        return JSONResponse({"message": "Workflow run cancelled"})

    async def send_event(request: Request) -> Response:
        run = await runs.get(key(request), str(request.path_params["run_id"]))
        body = await _body(request)
        event = body.get("event")
        if not isinstance(event, str) or not event:
            raise _Problem(400, "event required (a string)")
        if run.status in ("success", "failed", "canceled"):
            raise _Problem(409, f"run {run.run_id} has ended ({run.status})")
        runs.background(run.send_event(event, body.get("data")), key(request), run)
        return JSONResponse({"message": "Workflow run event sent"})

    async def sse(request: Request) -> Response:
        run = await runs.get(key(request), str(request.path_params["run_id"]))
        raw = request.headers.get("last-event-id") or request.query_params.get("after") or "-1"
        try:
            after = int(raw)
        except ValueError:
            raise _Problem(400, "Last-Event-ID must be a sequence number") from None
        queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=256)
        unwatch = run.watch(queue.put)  # subscribe first, then read the history: no gap
        history = await run.history(after)
        ended = run.status in ("success", "failed", "canceled")

        async def frames() -> AsyncIterator[bytes]:
            last = after
            try:
                for event in history:
                    last = event.seq
                    yield _sse(event)
                if ended or (history and history[-1].type == "finish"):
                    return
                while True:
                    event = await queue.get()
                    if event.seq <= last:
                        continue
                    last = event.seq
                    yield _sse(event)
                    if event.type == "finish":
                        return
            finally:
                unwatch()
                _drain(queue)

        return StreamingResponse(
            frames(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    prefix = "/api/workflows/{workflow_id}"
    routes = [
        Route("/api/workflows", list_workflows),
        Route(prefix, describe),
        Route(prefix + "/create-run", create_run, methods=["POST"]),
        Route(prefix + "/start", start, methods=["POST"]),
        Route(prefix + "/start-async", start_async, methods=["POST"]),
        Route(prefix + "/stream", stream, methods=["POST"]),
        Route(prefix + "/watch", watch),
        Route(prefix + "/resume", resume_now, methods=["POST"]),
        Route(prefix + "/resume-async", resume_async, methods=["POST"]),
        Route(prefix + "/runs", list_runs),
        Route(prefix + "/runs/{run_id}", run_by_id),
        Route(prefix + "/runs/{run_id}/execution-result", execution_result),
        Route(prefix + "/runs/{run_id}/cancel", cancel, methods=["POST"]),
        Route(prefix + "/runs/{run_id}/send-event", send_event, methods=["POST"]),
        Route(prefix + "/runs/{run_id}/events", sse),
    ]

    async def problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, _Problem)
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    app = Starlette(routes=routes, exception_handlers={_Problem: problem})
    app.state.runs = runs
    if token is not None:
        app.add_middleware(_BearerAuth, token=token)
    return app


def _sse(event: Event) -> bytes:
    data = json.dumps(event.to_wire())
    return f"id: {event.seq}\nevent: {event.type}\ndata: {data}\n\n".encode()


def _drain(queue: asyncio.Queue[Event]) -> None:
    # A run waiting to put into a departed subscriber's full queue must not wait forever.
    while not queue.empty():
        queue.get_nowait()
