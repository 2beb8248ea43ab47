"""Every malformed request is a 400/413/422 with ``{"error": ...}``, never a 500; odd values a
run computed never make a route fail or emit invalid JSON."""

from __future__ import annotations

import json
import math
from typing import Any

import httpx
import pytest

from stepstream import StepContext, Workflow, get_plugin_manager, step
from stepstream.server import create_app, serve_in_thread


def strict(text: str | bytes) -> Any:
    """Parse as RFC 8259 JSON: no NaN/Infinity, no lone surrogate."""

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} in the answer")

    data = json.loads(text, parse_constant=refuse)
    json.dumps(data, ensure_ascii=False).encode("utf-8")  # raises on a lone surrogate
    return data


START = "/api/workflows/seqWf/start-async"
EVENTS = "/api/workflows/seqWf/runs/{run_id}/events"

BAD_BODIES = [
    (b'{"inputData": {"value": "\xff"}}', "not UTF-8"),
    (b'{"inputData": {"value": NaN}}', "NaN is not JSON"),
    (b'{"inputData": {"value": Infinity}}', "Infinity is not JSON"),
    (b'{"inputData": {"value": -Infinity}}', "-Infinity is not JSON"),
    (b'{"inputData": {"value": 1, "x": "\\ud800"}}', "lone surrogate"),
    (b'{"inputData": {"value": 1, "\\udfff": 1}}', "lone surrogate"),
    (b"[" * 1000 + b"]" * 1000, "nested deeper than 100"),
    (b'{"inputData": ' + b"[" * 101 + b"]" * 101 + b"}", "nested deeper than 100"),
    (b'{"inputData": {"value": 1}', "invalid JSON body"),
    (b"\xef\xbb\xbf{}", "invalid JSON body"),  # a BOM is not JSON text
]


@pytest.mark.parametrize(("body", "why"), BAD_BODIES)
@pytest.mark.parametrize("route", [START, "/api/workflows/seqWf/stream?runId=b1"])
def test_malformed_json_is_a_400(server_url: str, route: str, body: bytes, why: str) -> None:
    answer = httpx.post(server_url + route, content=body)
    assert answer.status_code == 400
    assert why in strict(answer.text)["error"]
    assert httpx.get(f"{server_url}/api/workflows/seqWf/runs").json()["total"] == 0


@pytest.mark.parametrize("route", [START, "/api/workflows/seqWf/stream"])
def test_a_start_refused_for_its_input_stores_nothing(server_url: str, route: str) -> None:
    answer = httpx.post(server_url + route, json={"inputData": {"value": "x"}})
    assert answer.status_code == 400 and "inputData is invalid" in answer.json()["error"]
    assert httpx.get(f"{server_url}/api/workflows/seqWf/runs").json()["total"] == 0


def test_a_created_run_refused_at_its_start_stays_pending_for_a_good_start(
    server_url: str,
) -> None:
    api = f"{server_url}/api/workflows/seqWf"
    run_id = httpx.post(f"{api}/create-run").json()["runId"]
    bad = httpx.post(f"{api}/start?runId={run_id}", json={"inputData": {"value": "x"}})
    assert bad.status_code == 400 and "inputData is invalid" in bad.json()["error"]
    listed = httpx.get(f"{api}/runs").json()["runs"]
    assert [(r["runId"], r["snapshot"]["status"]) for r in listed] == [(run_id, "pending")]
    good = httpx.post(f"{api}/start-async?runId={run_id}", json={"inputData": {"value": 1}})
    assert good.status_code == 200 and good.json()["status"] == "success"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "why"),
    [
        ("POST", "/api/workflows/seqWf/create-run?runId=../x", None, 400, "invalid runId"),
        ("POST", "/api/workflows/seqWf/create-run?runId=/etc/x", None, 400, "invalid runId"),
        ("POST", "/api/workflows/seqWf/create-run?runId=" + "a" * 129, None, 400, "invalid runId"),
        ("POST", "/api/workflows/seqWf/create-run?runId=-rf", None, 400, "invalid runId"),
        ("POST", "/api/workflows/seqWf/start-async?runId=..", {}, 400, "invalid runId"),
        ("POST", "/api/workflows/seqWf/stream?runId=a%2F..%2Fb", {}, 400, "invalid runId"),
        ("POST", "/api/workflows/seqWf/start?runId=%00", {}, 400, "invalid runId"),
        ("GET", "/api/workflows/seqWf/watch?runId=../x", None, 400, "invalid runId"),
        ("POST", "/api/workflows/seqWf/resume?runId=../x", {"step": "a"}, 400, "invalid runId"),
        ("GET", "/api/workflows/seqWf/runs/.hidden", None, 400, "invalid runId"),
        ("GET", "/api/workflows/seqWf/runs/..%2Fx", None, 404, "Not Found"),
        ("GET", "/api/workflows/seqWf/runs?limit=-1", None, 400, "limit must be between"),
        ("GET", "/api/workflows/seqWf/runs?limit=" + "9" * 30, None, 400, "limit must be an"),
        ("GET", "/api/workflows/seqWf/runs?offset=" + "9" * 30, None, 400, "offset must be an"),
        ("GET", "/api/workflows/seqWf/runs?offset=1e3", None, 400, "offset must be an integer"),
        ("GET", "/api/workflows/seqWf/runs?limit=%D9%A3", None, 400, "limit must be an integer"),
        ("POST", START, {"inputData": {"value": 1}, "runtimeContext": []}, 422, "runtimeContext"),
        ("POST", "/api/workflows/seqWf/runs/r/send-event", {"event": 3}, 422, "event"),
        ("POST", "/api/workflows/seqWf/runs/r/send-event", {}, 422, "event: Field required"),
        ("POST", "/api/workflows/seqWf/resume-async?runId=r", {"step": [1]}, 422, "step"),
        ("GET", "/api/workflows/seqWf/nothing-here", None, 404, "Not Found"),
        ("DELETE", "/api/workflows", None, 405, "Method Not Allowed"),
    ],
)
def test_bad_requests_get_a_clear_4xx(
    server_url: str, method: str, path: str, body: Any, status: int, why: str
) -> None:
    answer = httpx.request(method, server_url + path, json=body)
    assert answer.status_code == status
    assert why in strict(answer.text)["error"]


@pytest.mark.parametrize(
    ("headers", "query", "why"),
    [
        ({"Last-Event-ID": str(2**63)}, "", "Last-Event-ID must be between"),
        ({"Last-Event-ID": "-2"}, "", "Last-Event-ID must be between"),
        ({"Last-Event-ID": "1" * 40}, "", "Last-Event-ID must be an integer"),
        ({}, "?after=" + "1" * 31, "after must be an integer"),
        ({}, "?after=" + str(2**63), "after must be between"),
    ],
)
def test_sequence_numbers_out_of_range_are_a_400(
    server_url: str, headers: dict[str, str], query: str, why: str
) -> None:
    run_id = httpx.post(f"{server_url}{START}", json={"inputData": {"value": 1}}).json()
    assert run_id["status"] == "success"
    listed = httpx.get(f"{server_url}/api/workflows/seqWf/runs").json()
    path = EVENTS.format(run_id=listed["runs"][0]["runId"]) + query
    answer = httpx.get(server_url + path, headers=headers)
    assert answer.status_code == 400
    assert why in strict(answer.text)["error"]
    largest = httpx.get(server_url + path.split("?")[0], headers={"Last-Event-ID": str(2**63 - 1)})
    assert largest.status_code == 200 and largest.text == ""  # nothing after the last seq


@step(id="odd")
async def odd(ctx: StepContext[Any]) -> Any:
    await ctx.write({"nan": math.nan, "text": "\ud800"})
    return {"nan": math.nan, "inf": -math.inf, "text": "lone \udc00 surrogate"}


def test_values_json_cannot_carry_never_break_a_route() -> None:
    # A run whose step computes NaN and a lone surrogate: refused before anything is stored
    # (the step fails with a StorageError naming the value), and every answer about it is
    # valid JSON.
    workflows = {"oddWf": Workflow(id="odd-wf").then(odd).commit()}
    app = create_app(workflows, plugin_manager=get_plugin_manager(load_entrypoints=False))
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        run_id = client.post("/api/workflows/oddWf/create-run").json()["runId"]
        with client.stream(
            "POST", f"/api/workflows/oddWf/stream?runId={run_id}", json={"inputData": {}}
        ) as streamed:
            records = [strict(r) for r in streamed.read().split(b"\x1e") if r]
        failed = [r for r in records if r["type"] == "step-result"]
        assert failed[0]["payload"]["status"] == "failed"
        assert "StorageError" in failed[0]["payload"]["error"]
        assert "['nan'] is nan (not JSON)" in failed[0]["payload"]["error"]
        assert records[-1]["type"] == "finish"
        result = strict(client.post("/api/workflows/oddWf/start-async", json={}).text)
        assert result["status"] == "failed" and "StorageError" in result["error"]
        for path in (
            "/api/workflows/oddWf/runs",
            f"/api/workflows/oddWf/runs/{run_id}",
            f"/api/workflows/oddWf/runs/{run_id}/execution-result",
        ):
            answer = client.get(path)
            assert answer.status_code == 200, path
            strict(answer.text)
        assert strict(client.get("/api/workflows/oddWf/runs").text)["total"] == 2
        sse = client.get(f"/api/workflows/oddWf/runs/{run_id}/events").text
        data = [line[6:] for line in sse.splitlines() if line.startswith("data: ")]
        assert [strict(d)["type"] for d in data][-1] == "finish"
