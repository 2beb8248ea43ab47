"""The stepstream HTTP server's app: its routes, middleware, error answers and lifespan.

The routes themselves are module-level functions, by what they do: ``_reading`` (health,
metrics, the OpenAPI document, workflows, stored runs), ``_control`` (create, start, resume,
cancel, send an event, fork) and ``_streams`` (stream, watch, Server-Sent Events). Each takes
its app's registry and settings from ``request.app.state`` (``_request.Served``, put there by
:func:`create_app`), so this module only assembles them (see the package docstring).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Mapping, Sequence

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import RunStateError
from ..plugin_manager import PluginManager, get_plugin_manager
from ..storage import Storage
from ..storage.sqlite import SQLiteStorage
from ..workflow import Workflow
from . import _control, _reading, _streams
from ._endpoints import ENDPOINTS, WORKFLOW
from ._following import Frames
from ._guards import DEFAULT_BODY_LIMIT, BearerAuth, BodyLimit
from ._registry import DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_LIVE, Runs
from ._request import Served
from ._serving import serve, serve_in_thread
from ._studio import studio_routes
from ._wire import JSON, Problem

__all__ = ["create_app", "serve", "serve_in_thread"]

log = logging.getLogger("stepstream.server")

_W = WORKFLOW
HANDLERS = {
    "/health": _reading.health,
    "/metrics": _reading.metrics,
    "/openapi.json": _reading.openapi_json,
    "/api/workflows": _reading.list_workflows,
    _W: _reading.describe,
    _W + "/create-run": _control.create_run,
    _W + "/start": _control.start,
    _W + "/start-async": _control.start_async,
    _W + "/stream": _streams.stream,
    _W + "/watch": _streams.watch,
    _W + "/resume": _control.resume_now,
    _W + "/resume-async": _control.resume_async,
    _W + "/runs": _reading.list_runs,
    _W + "/runs/{run_id}": _reading.run_by_id,
    _W + "/runs/{run_id}/execution-result": _reading.result_of,
    _W + "/runs/{run_id}/cancel": _control.cancel,
    _W + "/runs/{run_id}/send-event": _control.send_event,
    _W + "/runs/{run_id}/time-travel": _control.fork,
    _W + "/runs/{run_id}/events": _streams.sse,
}
"""The route of each path of :data:`~._endpoints.ENDPOINTS`."""


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
    served = Served(runs, Frames(), keepalive, shutdown_grace)
    app = Starlette(
        routes=[
            *(Route(e.path, HANDLERS[e.path], methods=[e.method]) for e in ENDPOINTS),
            *studio_routes(),  # the Studio (the web UI) at /
        ],
        middleware=_middleware(cors_origins, token, body_limit),
        exception_handlers={
            Problem: _problem,
            HTTPException: _http_error,
            RunStateError: _conflict,
            Exception: _crash,
        },
        # Bound to this app's state: a host app that runs it passes itself, not this app.
        lifespan=functools.partial(_lifespan, served),
    )
    app.state.served = served
    app.state.runs = runs
    return app


@contextlib.asynccontextmanager
async def _lifespan(served: Served, app: Starlette) -> AsyncIterator[None]:
    # Recovery takes up interrupted runs, the claimer queued starts; shutdown lets the
    # background work finish (up to the grace) before the storage closes.
    runs = served.runs
    recovering = asyncio.get_running_loop().create_task(runs.recovering())
    claiming = asyncio.get_running_loop().create_task(runs.claimer.run())
    try:
        yield
    finally:
        recovering.cancel()
        claiming.cancel()
        await asyncio.gather(recovering, claiming, return_exceptions=True)
        await runs.shutdown(served.shutdown_grace)


def _middleware(
    cors_origins: Sequence[str], token: str | None, body_limit: int
) -> list[Middleware]:
    """The middleware in front of every route, outermost first: CORS (which answers the
    preflights, so they need no token), the bearer token, the body limit, the trace parent."""
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
    return middleware


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
