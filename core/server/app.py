"""The routes of the stepstream HTTP server (see the package docstring)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ..context import RuntimeContext
from ..errors import RunStateError, StepstreamError
from ..events import Event
from ..plugin_manager import PluginManager, get_plugin_manager
from ..result import RunState, StepRecord
from ..run import Run
from ..storage import RunSnapshot, Storage
from ..storage.sqlite import SQLiteStorage
from ..workflow import Workflow
from .describe import workflow_info

__all__ = ["create_app", "serve", "serve_in_thread"]

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
        wf = self.workflow(key)
        if run_id and (key, run_id) in self.live:
            return self.live[(key, run_id)]
        run = await wf.create_run(run_id or None, plugin_manager=self.pm, storage=self.storage)
        self.live[(key, run.run_id)] = run
        return run

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

    def background(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


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


def _record(seq_or_event: Event) -> bytes:
    return (json.dumps(seq_or_event.to_wire()) + RS).encode()


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
    steps: dict[str, Any] = {"input": state.input}
    for step_id, record in state.steps.items():
        steps[step_id] = record.to_wire()
    return steps


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


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

    async def start(request: Request) -> Response:
        run = await runs.get(key(request), request.query_params.get("runId"))
        body = await _body(request)
        _check_input(run.workflow, body.get("inputData"))
        if run.status != "pending":
            raise _Problem(409, f"run {run.run_id} has already started")
        runs.background(run.start(body.get("inputData"), _context(body)))
        return JSONResponse({"message": "Workflow run started"})

    async def start_async(request: Request) -> Response:
        run = await runs.create(key(request), request.query_params.get("runId"))
        body = await _body(request)
        _check_input(run.workflow, body.get("inputData"))
        if run.status != "pending":
            raise _Problem(409, f"run {run.run_id} has already started")
        result = await run.start(body.get("inputData"), _context(body))
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
            async for event in events:
                yield _record(event)

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
                    done, pending = await asyncio.wait(waiting, return_when="FIRST_COMPLETED")
                    for other in pending:
                        other.cancel()
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
        if run.status != "suspended":
            raise _Problem(409, f"run {run.run_id} is not suspended (status {run.status!r})")
        work = run.resume(step, body.get("resumeData"), _context(body))
        if not wait:
            runs.background(work)
            return JSONResponse({"message": "Workflow run resumed"})
        try:
            return JSONResponse((await work).to_wire())
        except RunStateError as exc:
            raise _Problem(409, str(exc)) from None

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
        runs.background(run.send_event(event, body.get("data")))
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


class _BearerAuth:
    """Rejects ``/api`` requests without ``Authorization: Bearer <token>`` (401)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api"):
            headers = dict(scope.get("headers") or [])
            if headers.get(b"authorization") != self.expected:
                response = JSONResponse(
                    {"error": "missing or invalid bearer token"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


@contextlib.contextmanager
def serve_in_thread(app: Starlette, *, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``app`` with uvicorn from a background thread; yield its base URL.

    For tests, notebooks and benchmarks: the server listens before the URL is yielded and is
    stopped on exit. ``port=0`` picks a free port.
    """
    import uvicorn

    if port == 0:
        with socket.socket() as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="error"))
    thread = threading.Thread(target=server.run, name="stepstream-uvicorn", daemon=True)
    thread.start()
    while not server.started:  # uvicorn's own readiness flag, set once it listens
        if not thread.is_alive():
            raise RuntimeError(f"the HTTP server did not start on {host}:{port}")
        thread.join(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def serve(app: Starlette, *, host: str = "127.0.0.1", port: int = 4111) -> None:
    """Serve ``app`` with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="warning")


_Handler = Callable[[Request], Awaitable[Response]]
_unused = StepRecord
