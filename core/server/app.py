"""The routes of the stepstream HTTP server (see the package docstring)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .._time_travel import time_travel
from ..errors import (
    InputValidationError,
    RunClaimedError,
    RunStateError,
    StepstreamError,
    TimeTravelError,
)
from ..events import Event
from ..graph import WorkflowGraph
from ..plugin_manager import PluginManager, get_plugin_manager
from ..result import WorkflowResult
from ..run import Run
from ..storage import RunSnapshot, Storage
from ..storage.sqlite import SQLiteStorage
from ..workflow import Workflow
from ._following import ENDED, Frames, Streamed, coalesce, follow, watch_records
from ._guards import DEFAULT_BODY_LIMIT, BearerAuth, BodyLimit
from ._models import (
    Endpoint,
    ResumeBody,
    SendEventBody,
    StartBody,
    TimeTravelBody,
    openapi,
    read_body,
)
from ._queue import full, queue_start
from ._registry import DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_LIVE, Runs
from ._remote import RemoteRun, remote_watch
from ._serving import serve, serve_in_thread
from ._stored import execution_result, stored_run
from ._studio import studio_routes
from ._wire import JSON, Problem, dumps, int_param, run_id_of, seq_param
from .describe import workflow_info

__all__ = ["create_app", "serve", "serve_in_thread"]

log = logging.getLogger("stepstream.server")

RS = "\x1e"  # Mastra's record separator between JSON records
PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"  # the text exposition format's type
LIST_LIMIT = 1000  # the most runs one `GET .../runs` answers
LIST_OFFSET = 100_000

_W = "/api/workflows/{workflow_id}"
ENDPOINTS = [
    Endpoint("GET", "/health", "Whether the server and its storage answer"),
    Endpoint("GET", "/metrics", "The metrics plugin's figures (Prometheus text format)"),
    Endpoint("GET", "/openapi.json", "This document"),
    Endpoint("GET", "/api/workflows", "Every workflow, by registration key"),
    Endpoint("GET", _W, "One workflow's description"),
    Endpoint("POST", _W + "/create-run", "Create a run", query=("runId",)),
    Endpoint("POST", _W + "/start", "Start a created run", StartBody, ("runId",)),
    Endpoint("POST", _W + "/start-async", "Run to the end", StartBody, ("runId",)),
    Endpoint("POST", _W + "/stream", "Run, streaming records", StartBody, ("runId",), "text/plain"),
    Endpoint("GET", _W + "/watch", "Watch a run's state", query=("runId",), stream="text/plain"),
    Endpoint("POST", _W + "/resume", "Resume a suspended run", ResumeBody, ("runId",)),
    Endpoint("POST", _W + "/resume-async", "Resume, to the end", ResumeBody, ("runId",)),
    Endpoint("GET", _W + "/runs", "Stored runs", query=("limit", "offset")),
    Endpoint("GET", _W + "/runs/{run_id}", "One stored run"),
    Endpoint("GET", _W + "/runs/{run_id}/execution-result", "A run's result"),
    Endpoint("POST", _W + "/runs/{run_id}/cancel", "Cancel a run"),
    Endpoint("POST", _W + "/runs/{run_id}/send-event", "Send an event", SendEventBody),
    Endpoint(
        "POST",
        _W + "/runs/{run_id}/time-travel",
        "Fork a stored run at a step into a new run, started at once (409: the workflow no "
        "longer matches the run, or the step never ran)",
        TimeTravelBody,
    ),
    Endpoint(
        "GET",
        _W + "/runs/{run_id}/events",
        "Follow a run as Server-Sent Events (Last-Event-ID or ?after= resumes)",
        query=("after",),
        stream="text/event-stream",
    ),
]


def create_app(
    workflows: Mapping[str, Workflow],
    *,
    storage: Storage | None = None,
    token: str | None = None,
    plugin_manager: PluginManager | None = None,
    cors_origins: Sequence[str] = (),
    body_limit: int = DEFAULT_BODY_LIMIT,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    max_live: int = DEFAULT_MAX_LIVE,
    keepalive: float = 15.0,
    shutdown_grace: float = 10.0,
    max_runs: int = 0,
) -> Starlette:
    """An ASGI app serving ``workflows`` (registration key -> committed workflow).

    Mount it anywhere (``Mount("/wf", app)``): the token, the body limit and CORS hold for
    every route whatever the prefix. A host app that mounts it should run its lifespan
    (``lifespan=app.router.lifespan_context``) so the storage is closed at shutdown.

    :param storage: Where runs are kept; an in-memory SQLite store by default. The app owns
        it: its lifespan closes it at shutdown.
    :param token: When given, every request needs ``Authorization: Bearer <token>`` (401).
    :param plugin_manager: The manager of every run; a fresh default one otherwise.
    :param cors_origins: Origins whose browser pages may call the API (``"*"`` for any);
        none by default (no CORS headers, preflights not answered).
    :param body_limit: The largest request body in bytes (413 beyond); 4.5 MiB by default.
    :param idle_timeout: Seconds an idle run stays in memory (see ``_registry``).
    :param max_live: The most runs in memory at once.
    :param keepalive: Seconds between SSE pings on a quiet stream.
    :param shutdown_grace: Seconds shutdown waits for background work before closing storage.
    :param max_runs: The most runs this instance executes at once; with a PostgreSQL storage,
        a start past it is queued for any instance with room (``_queue``). 0: no limit.
    """
    runs = Runs(
        workflows,
        storage or SQLiteStorage(":memory:"),
        plugin_manager or get_plugin_manager(),
        idle_timeout=idle_timeout,
        max_live=max_live,
        max_runs=max_runs,
    )

    encoded = Frames()  # the SSE frames of recent events, shared by every follower

    def key(request: Request) -> str:
        return str(request.path_params["workflow_id"])

    def path_run_id(request: Request) -> str:
        return str(run_id_of(str(request.path_params["run_id"]), required=True))

    def query_run_id(request: Request, *, required: bool) -> str | None:
        return run_id_of(request.query_params.get("runId"), required=required)

    async def health(request: Request) -> Response:
        try:
            await runs.storage.list_runs(limit=1)
        except Exception as exc:
            log.error("health check: the storage failed", exc_info=exc)
            return JSON({"error": "the storage does not answer"}, status_code=503)
        return JSON({"status": "ok", "liveRuns": len(runs.entries)})

    async def metrics(request: Request) -> Response:
        plugin = runs.pm.get_plugin("metrics")
        if plugin is None:
            raise Problem(404, "the metrics plugin is not on")
        return Response(plugin.render_prometheus(), media_type=PROMETHEUS)

    async def openapi_json(request: Request) -> Response:
        return JSON(openapi(ENDPOINTS, title="stepstream", version="0.10.15"))

    async def list_workflows(request: Request) -> Response:
        return JSON({k: workflow_info(wf, for_list=True) for k, wf in runs.workflows.items()})

    async def describe(request: Request) -> Response:
        return JSON(workflow_info(runs.workflow(key(request))))

    async def create_run(request: Request) -> Response:
        run = await runs.create(key(request), query_run_id(request, required=False), pending=True)
        return JSON({"runId": run.run_id})

    def starting(run: Run | RemoteRun, body: StartBody) -> Awaitable[WorkflowResult]:
        """The run's start, once its body is checked (4xx otherwise)."""
        _check_input(run.workflow, body.input_data)
        if isinstance(run, RemoteRun) or run.status != "pending":
            raise Problem(409, f"run {run.run_id} has already started")
        return run.start(body.input_data, body.context())

    async def start(request: Request) -> Response:
        run_id = query_run_id(request, required=True)
        body = await read_body(request, StartBody)
        run = await runs.get(key(request), str(run_id))
        if full(runs) and isinstance(run, Run) and run.status == "pending":  # issue 16's seam
            _check_input(run.workflow, body.input_data)
            await queue_start(runs, key(request), run, body.input_data, body.context(), wait=False)
            return JSON({"message": "Workflow run started"})
        runs.background(starting(run, body), key(request), run)
        await run.started()  # stored before answering: a client may ask for it at once
        return JSON({"message": "Workflow run started"})

    async def start_async(request: Request) -> Response:
        run_id = query_run_id(request, required=False)
        body = await read_body(request, StartBody)
        run = await runs.create(key(request), run_id)
        if full(runs) and isinstance(run, Run) and run.status == "pending":  # issue 16's seam
            _check_input(run.workflow, body.input_data)
            queued = await queue_start(
                runs, key(request), run, body.input_data, body.context(), wait=True
            )
            if queued is None:
                raise Problem(500, f"run {run.run_id} ended without a result")
            return JSON(queued.to_wire())
        result = await starting(run, body)
        runs.settle(key(request), run)
        return JSON(result.to_wire())

    async def stream(request: Request) -> Response:
        run_id = query_run_id(request, required=False)
        body = await read_body(request, StartBody)
        run = await runs.create(key(request), run_id)
        if run.status == "pending":
            _check_input(run.workflow, body.input_data)
        try:
            events = run.stream(body.input_data, body.context())
        except StepstreamError as exc:
            raise Problem(409, str(exc)) from None

        async def records() -> AsyncIterator[bytes]:
            async with runs.holding(key(request), run):
                async for event in events:
                    yield (dumps(event.to_wire()) + RS).encode()

        return Streamed(coalesce(records()), media_type="text/plain; charset=UTF-8")

    async def watch(request: Request) -> Response:
        run = await runs.get(key(request), str(query_run_id(request, required=True)), follow=True)

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
            return (dumps(dumps(body)) + RS).encode()

        async def records() -> AsyncIterator[bytes]:
            if isinstance(run, RemoteRun):  # executing in another process (issue 16's seam)
                async for chunk in remote_watch(run, record):
                    yield chunk
                return
            async with runs.holding(key(request), run):
                async for chunk in watch_records(run, record):
                    yield chunk

        return Streamed(records(), media_type="text/plain; charset=UTF-8")

    async def resume(request: Request, *, wait: bool) -> Response:
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
        return await resume(request, wait=False)

    async def resume_async(request: Request) -> Response:
        return await resume(request, wait=True)

    async def list_runs(request: Request) -> Response:
        wf = runs.workflow(key(request))
        limit = int_param(request, "limit", 100, low=0, high=LIST_LIMIT)
        offset = int_param(request, "offset", 0, low=0, high=LIST_OFFSET)
        found = await runs.storage.list_runs(workflow_id=wf.id, limit=2**62)
        snapshots = [await runs.storage.load_run(r.run_id) for r in found[offset : offset + limit]]
        items = [stored_run(key(request), s) for s in snapshots if s is not None]
        return JSON({"runs": items, "total": len(found)})

    async def stored(request: Request) -> RunSnapshot:
        wf = runs.workflow(key(request))
        snapshot = await runs.storage.load_run(path_run_id(request))
        if snapshot is None or snapshot.workflow_id != wf.id:
            raise Problem(404, "Workflow run not found")
        return snapshot

    async def run_by_id(request: Request) -> Response:
        return JSON(stored_run(key(request), await stored(request)))

    async def result_of(request: Request) -> Response:
        return JSON(execution_result(await stored(request)))

    async def cancel(request: Request) -> Response:
        run = await runs.get(key(request), path_run_id(request))
        try:
            await run.cancel()
        except RunClaimedError as exc:  # executing in another server process
            runs.forget(key(request), run)
            raise Problem(409, str(exc)) from None
        runs.settle(key(request), run)
        return JSON({"message": "Workflow run cancelled"})

    async def send_event(request: Request) -> Response:
        run_id = path_run_id(request)
        body = await read_body(request, SendEventBody)
        run = await runs.get(key(request), run_id)
        if run.status in ENDED:
            raise Problem(409, f"run {run.run_id} has ended ({run.status})")
        runs.background(run.send_event(body.event, body.data), key(request), run)
        return JSON({"message": "Workflow run event sent"})

    async def fork(request: Request) -> Response:
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

    async def sse(request: Request) -> Response:
        run_id = path_run_id(request)
        header = request.headers.get("last-event-id")
        raw = header or request.query_params.get("after") or "-1"
        after = seq_param(raw, "Last-Event-ID" if header else "after")
        run = await runs.get(key(request), run_id, follow=True)

        async def frames() -> AsyncIterator[bytes]:
            if isinstance(run, RemoteRun):  # executing in another process: its stored log
                async for chunk in follow(run, after, keepalive, encoded):
                    yield chunk
                return
            async with runs.holding(key(request), run):
                async for chunk in follow(run, after, keepalive, encoded):
                    yield chunk

        return Streamed(
            coalesce(frames()),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    handlers = {
        "/health": health,
        "/metrics": metrics,
        "/openapi.json": openapi_json,
        "/api/workflows": list_workflows,
        _W: describe,
        _W + "/create-run": create_run,
        _W + "/start": start,
        _W + "/start-async": start_async,
        _W + "/stream": stream,
        _W + "/watch": watch,
        _W + "/resume": resume_now,
        _W + "/resume-async": resume_async,
        _W + "/runs": list_runs,
        _W + "/runs/{run_id}": run_by_id,
        _W + "/runs/{run_id}/execution-result": result_of,
        _W + "/runs/{run_id}/cancel": cancel,
        _W + "/runs/{run_id}/send-event": send_event,
        _W + "/runs/{run_id}/time-travel": fork,
        _W + "/runs/{run_id}/events": sse,
    }
    routes = [Route(e.path, handlers[e.path], methods=[e.method]) for e in ENDPOINTS]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        recovering = asyncio.get_running_loop().create_task(runs.recovering())
        claiming = asyncio.get_running_loop().create_task(runs.claimer.run())
        try:
            yield
        finally:
            recovering.cancel()
            claiming.cancel()
            await asyncio.gather(recovering, claiming, return_exceptions=True)
            await runs.shutdown(shutdown_grace)

    middleware = []
    if cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(cors_origins),
                allow_methods=["GET", "POST", "OPTIONS"],
                allow_headers=["Content-Type", "Authorization", "x-mastra-client-type"],
                expose_headers=["Content-Length", "X-Requested-With"],
                max_age=600,
            )
        )
    if token is not None:
        middleware.append(Middleware(BearerAuth, token=token))
    middleware.append(Middleware(BodyLimit, limit=body_limit))
    middleware.append(Middleware(_TraceParent))
    app = Starlette(
        routes=[*routes, *studio_routes()],  # the Studio (the web UI) at /
        middleware=middleware,
        exception_handlers={
            Problem: _problem,
            HTTPException: _http_error,
            RunStateError: _conflict,
            Exception: _crash,
        },
        lifespan=lifespan,
    )
    app.state.runs = runs
    return app


def _check_input(wf: WorkflowGraph, data: Any) -> None:
    try:
        wf.parse_input(data)
    except StepstreamError as exc:
        raise Problem(400, f"inputData is invalid: {exc}") from None


async def _problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return JSON({"error": exc.message}, status_code=exc.status)


class _TraceParent:
    """Runs started or resumed for a request carrying a W3C ``traceparent`` header become
    children of that remote span (when the ``otel`` extra is installed; else a no-op)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        try:
            from stepstream.plugins.otel import traceparent_context
        except ImportError:
            self.context = None
        else:
            self.context = traceparent_context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        header = dict(scope.get("headers", ())).get(b"traceparent")
        if scope["type"] != "http" or header is None or self.context is None:
            await self.app(scope, receive, send)
            return
        with self.context(header.decode("latin-1")):
            await self.app(scope, receive, send)


async def _conflict(request: Request, exc: Exception) -> Response:
    # A run's state forbids the call: already stored (another workflow's id), held by another
    # server process, or changed since this one saw it.
    return JSON({"error": str(exc)}, status_code=409)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSON({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _crash(request: Request, exc: Exception) -> Response:
    if isinstance(exc, ClientDisconnect):  # nobody to answer: not the server's failure
        log.debug("%s %s: the client left", request.method, request.url.path)
        return Response(status_code=400)
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return JSON({"error": "internal server error"}, status_code=500)
