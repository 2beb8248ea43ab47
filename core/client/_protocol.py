"""The client's logic without I/O: requests to make, answers to read, records to split.

:class:`Client` and :class:`AsyncClient` only send what :class:`Call` describes and feed the
bytes they receive to :class:`RecordSplitter` / :func:`result_from_wire`; so both behave alike
and this part is tested without a socket.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from ..context import RuntimeContext
from ..errors import ClientError
from ..events import Event, event_from_wire
from ..result import StepRecord, WorkflowResult

RS = b"\x1e"

RECONNECTS = 5
"""How many times in a row ``events()`` reconnects after losing the server."""


@dataclass(frozen=True)
class Call:
    """One request: method, path under the base URL, query and JSON body."""

    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None

    def request(self, client: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        """The httpx request of this call, built by ``client`` (its base URL, headers)."""
        return client.build_request(
            self.method, self.path, params=self.params or None, json=self.body
        )


class Calls:
    """The calls of one workflow's endpoints (Mastra's ``Workflow`` methods)."""

    def __init__(self, key: str) -> None:
        self.base = f"/api/workflows/{quote(key, safe='')}"

    def run(self, run_id: str, action: str = "") -> str:
        """The path of a run's own endpoints."""
        return f"{self.base}/runs/{quote(run_id, safe='')}{action}"

    def create_run(self, run_id: str | None) -> Call:
        return Call("POST", f"{self.base}/create-run", _ids(run_id))

    def start(
        self, path: str, run_id: str | None, input_data: Any, context: RuntimeContext | None
    ) -> Call:
        body: dict[str, Any] = {"inputData": input_data}
        if context is not None:
            body["runtimeContext"] = context.to_dict()
        return Call("POST", f"{self.base}/{path}", _ids(run_id), body)

    def resume(
        self,
        path: str,
        run_id: str,
        step: str | list[str],
        resume_data: Any,
        context: RuntimeContext | None,
    ) -> Call:
        body: dict[str, Any] = {"step": step, "resumeData": resume_data}
        if context is not None:
            body["runtimeContext"] = context.to_dict()
        return Call("POST", f"{self.base}/{path}", _ids(run_id), body)

    def watch(self, run_id: str) -> Call:
        return Call("GET", f"{self.base}/watch", _ids(run_id))

    def runs(self, limit: int | None, offset: int | None) -> Call:
        params = {k: str(v) for k, v in (("limit", limit), ("offset", offset)) if v is not None}
        return Call("GET", f"{self.base}/runs", params)

    def send_event(self, run_id: str, event: str, data: Any) -> Call:
        return Call("POST", self.run(run_id, "/send-event"), body={"event": event, "data": data})

    def events(self, run_id: str) -> Call:
        return Call("GET", self.run(run_id, "/events"))


def _ids(run_id: str | None) -> dict[str, str]:
    return {} if run_id is None else {"runId": run_id}


def answer(response: httpx.Response) -> Any:
    """The JSON of a successful answer.

    :raises ClientError: for an error status, with the server's ``error`` message.
    """
    if response.is_success:
        return response.json()
    raise error_of(response, response.content)


def error_of(response: httpx.Response, body: bytes) -> ClientError:
    """The :class:`ClientError` of an error answer (``body`` read by the caller)."""
    try:
        message = str(json.loads(body)["error"])
    except (ValueError, KeyError, TypeError):
        message = body[:200].decode("utf-8", "replace")
    return ClientError(
        f"{response.request.method} {response.request.url.path} answered "
        f"{response.status_code}: {message}",
        status=response.status_code,
        url=str(response.request.url),
    )


class RecordSplitter:
    """Whole records of a ``\\x1e``-separated body, however the network cut it."""

    def __init__(self) -> None:
        self._rest = b""

    def feed(self, chunk: bytes) -> list[Any]:
        """The records completed by ``chunk``, parsed."""
        *whole, self._rest = (self._rest + chunk).split(RS)
        return [json.loads(r) for r in whole if r.strip()]

    def end(self) -> list[Any]:
        """A last record left without its separator."""
        rest, self._rest = self._rest, b""
        return [json.loads(rest)] if rest.strip() else []


class Numbering:
    """Typed events from the stream route's records, numbered as the run numbers them."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.seq = 0

    def event(self, wire: dict[str, Any]) -> Event:
        """The next record as an event."""
        event = event_from_wire(wire, run_id=self.run_id, seq=self.seq)
        self.seq += 1
        return event


def sse_event(run_id: str, seq: str, data: str) -> Event:
    """An event of the SSE route (``id`` = its sequence number)."""
    return event_from_wire(json.loads(data), run_id=run_id, seq=int(seq))


def result_from_wire(run_id: str, wire: dict[str, Any]) -> WorkflowResult:
    """A :class:`WorkflowResult` from Mastra's ``getWorkflowState()`` JSON."""
    steps = dict(wire.get("steps") or {})
    input_data = steps.pop("input", None)
    return WorkflowResult(
        run_id=run_id,
        status=wire["status"],
        input=input_data,
        steps={k: _record(v) for k, v in steps.items() if isinstance(v, dict)},
        result=wire.get("result"),
        error=wire.get("error"),
        suspended=[list(p) for p in wire.get("suspended") or []],
    )


def _record(wire: dict[str, Any]) -> StepRecord:
    return StepRecord(
        payload=wire.get("payload"),
        started_at=int(wire.get("startedAt") or 0),
        status=wire.get("status", "running"),
        output=wire.get("output"),
        error=wire.get("error"),
        ended_at=wire.get("endedAt"),
        suspend_payload=wire.get("suspendPayload"),
        suspended_at=wire.get("suspendedAt"),
        resume_payload=wire.get("resumePayload"),
        resumed_at=wire.get("resumedAt"),
    )


def backoff(attempt: int) -> float:
    """Seconds before reconnect ``attempt`` (1-based): 0.1 s, doubling, at most 1 s (as
    Mastra's client retries)."""
    return float(min(0.1 * 2 ** (attempt - 1), 1.0))
