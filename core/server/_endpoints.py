"""The API's operations, as ``/openapi.json`` describes them and ``create_app`` routes them."""

from __future__ import annotations

from ._models import Endpoint, ResumeBody, SendEventBody, StartBody, TimeTravelBody

__all__ = ["ENDPOINTS", "WORKFLOW"]

WORKFLOW = "/api/workflows/{workflow_id}"
"""The path of one workflow, below which are its runs."""

_W = WORKFLOW
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
"""Every operation of the API, in the order of the OpenAPI document."""
