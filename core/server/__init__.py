"""An HTTP server for stepstream workflows that speaks Mastra's workflow API.

``create_app({"seqWf": workflow, ...})`` gives an ASGI app (Starlette) with the workflow
endpoints of Mastra's server (``/api/workflows/...``: list, describe, create-run, start,
start-async, stream, watch, resume, resume-async, runs, execution-result, cancel, send-event),
so Mastra front ends and ``@mastra/client-js`` work against Python workflows unchanged; see
``docs/mastra-compatibility.md``. Beside them, ``GET .../runs/{runId}/events`` streams a run
as Server-Sent Events (``id:`` = sequence number), resuming after ``Last-Event-ID``.

Runs are kept in the given storage (an in-memory SQLite store by default), so every run can be
listed, inspected and resumed, and SSE clients can reconnect. Requires ``stepstream[server]``.

Where each guarantee lives: ``_guards`` (bearer token on every route, body limit), ``_wire``
(strict JSON in, valid JSON out, run ids and numbers checked), ``_models`` (request bodies,
``/openapi.json``), ``_following`` (coalesced stream writes, SSE followers that never slow a
run, watchers), ``_registry`` (the bounded set of live runs, shutdown), ``_stored`` (stored
runs' shapes). The routes are module-level functions in ``_reading``, ``_control`` and
``_streams`` (``_request`` holds what they read from a request and share through
``app.state``); ``app`` assembles them with the middleware, the error answers and the
lifespan. Also ``GET /health`` and ``GET /metrics`` (the ``metrics`` plugin's Prometheus
text, 404 when it is off).
"""

from __future__ import annotations

from .app import create_app, serve, serve_in_thread

__all__ = ["create_app", "serve", "serve_in_thread"]
