"""What every route reads from its request: the app's shared state, the workflow key, run ids.

The routes are plain module-level functions (``Request -> Response``, as Starlette calls
them), neither closures inside ``create_app`` nor methods of a class over the registry: each
takes what it shares with the other routes of its app from ``request.app.state``
(:class:`Served`: the run registry, the SSE frame cache, the settings), where ``create_app``
puts it. Why functions rather than a class: split by responsibility, the routes would need one
class per module, each holding the same registry and settings (or one class of twenty methods
again, the closure under another name); as functions, each module holds only its routes, a
route's inputs are its request and the one :class:`Served` it asks for, and the modules import
each other in one direction only. Two apps in one process (tests, a host app mounting two)
still never share a registry, since each has its own state. Starlette sets ``request.app`` to
the innermost app, so this holds when the app is mounted under another
(``Mount("/wf", app)``); only the lifespan is called with the host app, so ``create_app``
binds it to its :class:`Served` instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from ..errors import StepstreamError
from ..graph import WorkflowGraph
from ..storage import RunSnapshot
from ._following import Frames
from ._registry import Runs
from ._wire import Problem, run_id_of

__all__ = ["Served", "check_input", "key", "path_run_id", "query_run_id", "served", "stored"]


@dataclass(frozen=True)
class Served:
    """What the routes of one app share, kept as ``app.state.served``."""

    runs: Runs
    """The app's runs (also ``app.state.runs``, for a host app and the tests)."""
    frames: Frames
    """The SSE frames of recent events, shared by every follower of every run."""
    keepalive: float
    """Seconds between SSE pings on a quiet stream."""
    shutdown_grace: float
    """Seconds shutdown waits for background work before closing the storage."""


def served(request: Request) -> Served:
    """The shared state of the app that ``request`` reached."""
    found: Served = request.app.state.served
    return found


def key(request: Request) -> str:
    """The workflow's registration key in the path."""
    return str(request.path_params["workflow_id"])


def path_run_id(request: Request) -> str:
    """The run id in the path, checked (400 if it is not a safe run id)."""
    return str(run_id_of(str(request.path_params["run_id"]), required=True))


def query_run_id(request: Request, *, required: bool) -> str | None:
    """The ``runId`` query parameter, checked (400 if it is missing when ``required``)."""
    return run_id_of(request.query_params.get("runId"), required=required)


async def stored(request: Request) -> RunSnapshot:
    """The stored run the path names (404 if none, or if it is another workflow's)."""
    runs = served(request).runs
    wf = runs.workflow(key(request))
    snapshot = await runs.storage.load_run(path_run_id(request))
    if snapshot is None or snapshot.workflow_id != wf.id:
        raise Problem(404, "Workflow run not found")
    return snapshot


def check_input(wf: WorkflowGraph, data: Any) -> None:
    """Check a body's ``inputData`` against ``wf``'s input schema (400 if it does not fit)."""
    try:
        wf.parse_input(data)
    except StepstreamError as exc:
        raise Problem(400, f"inputData is invalid: {exc}") from None
