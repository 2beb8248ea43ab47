"""What the routes answer about stored runs: Mastra's ``WorkflowRun`` and execution result."""

from __future__ import annotations

import time
from typing import Any

from ..result import RunState, steps_wire
from ..storage import RunSnapshot


def stored_run(key: str, snapshot: RunSnapshot) -> dict[str, Any]:
    """Mastra's ``WorkflowRun`` (the storage row) of ``snapshot``."""
    stamp = _iso(snapshot.updated_at)
    row: dict[str, Any] = {
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
        "createdAt": _iso(snapshot.created_at or snapshot.updated_at),
        "updatedAt": stamp,
    }
    forked = snapshot.meta.get("forkedFrom")
    if forked is not None:  # a time-travel fork (stepstream's own field): where it came from
        row["snapshot"]["forkedFrom"] = forked
    return row


def execution_result(snapshot: RunSnapshot) -> dict[str, Any]:
    """Mastra's ``runExecutionResult``: ``{status, result?, error?, payload, steps}``."""
    steps = _steps_wire(snapshot)
    out: dict[str, Any] = {"status": snapshot.status}
    if snapshot.status == "success":
        out["result"] = snapshot.result
    if snapshot.error is not None:
        out["error"] = snapshot.error
    out["payload"] = steps["input"]
    out["steps"] = steps
    return out


def _steps_wire(snapshot: RunSnapshot) -> dict[str, Any]:
    state = RunState.from_json(snapshot.state)
    return steps_wire(state.input, state.steps)


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"
