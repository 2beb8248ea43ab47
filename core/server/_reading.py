"""The routes that only read: health, metrics, the OpenAPI document, workflows, stored runs.

None of them touches a live run: they answer from the registry's workflows, the storage and the
``metrics`` plugin. (Module-level functions over ``request.app.state``: see ``_request``.)
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from ._endpoints import ENDPOINTS
from ._models import openapi
from ._request import key, served, stored
from ._stored import execution_result, stored_run
from ._wire import JSON, Problem, int_param
from .describe import workflow_info

__all__ = [
    "describe",
    "health",
    "list_runs",
    "list_workflows",
    "metrics",
    "openapi_json",
    "result_of",
    "run_by_id",
]

log = logging.getLogger("stepstream.server")

PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"  # the text exposition format's type
LIST_LIMIT = 1000  # the most runs one `GET .../runs` answers
LIST_OFFSET = 100_000


async def health(request: Request) -> Response:
    """``GET /health``: 200 with the number of live runs, 503 when the storage fails."""
    runs = served(request).runs
    try:
        await runs.storage.list_runs(limit=1)
    except Exception as exc:
        log.error("health check: the storage failed", exc_info=exc)
        return JSON({"error": "the storage does not answer"}, status_code=503)
    return JSON({"status": "ok", "liveRuns": len(runs.entries)})


async def metrics(request: Request) -> Response:
    """``GET /metrics``: the ``metrics`` plugin's Prometheus text (404 when it is off)."""
    plugin = served(request).runs.pm.get_plugin("metrics")
    if plugin is None:
        raise Problem(404, "the metrics plugin is not on")
    return Response(plugin.render_prometheus(), media_type=PROMETHEUS)


async def openapi_json(request: Request) -> Response:
    """``GET /openapi.json``: the OpenAPI 3.1 document of :data:`~._endpoints.ENDPOINTS`."""
    return JSON(openapi(ENDPOINTS, title="stepstream", version="0.10.15"))


async def list_workflows(request: Request) -> Response:
    """``GET /api/workflows``: every workflow's summary, by registration key."""
    workflows = served(request).runs.workflows
    return JSON({k: workflow_info(wf, for_list=True) for k, wf in workflows.items()})


async def describe(request: Request) -> Response:
    """``GET /api/workflows/{id}``: one workflow's description (404 for an unknown key)."""
    return JSON(workflow_info(served(request).runs.workflow(key(request))))


async def list_runs(request: Request) -> Response:
    """``GET .../runs``: a page of the workflow's stored runs (``limit``, ``offset``), and
    how many there are."""
    runs = served(request).runs
    wf = runs.workflow(key(request))
    limit = int_param(request, "limit", 100, low=0, high=LIST_LIMIT)
    offset = int_param(request, "offset", 0, low=0, high=LIST_OFFSET)
    found = await runs.storage.list_runs(workflow_id=wf.id, limit=2**62)
    snapshots = [await runs.storage.load_run(r.run_id) for r in found[offset : offset + limit]]
    items = [stored_run(key(request), s) for s in snapshots if s is not None]
    return JSON({"runs": items, "total": len(found)})


async def run_by_id(request: Request) -> Response:
    """``GET .../runs/{runId}``: Mastra's ``WorkflowRun`` of one stored run."""
    return JSON(stored_run(key(request), await stored(request)))


async def result_of(request: Request) -> Response:
    """``GET .../runs/{runId}/execution-result``: a stored run's result."""
    return JSON(execution_result(await stored(request)))
