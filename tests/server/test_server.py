"""The HTTP server against Mastra's workflow API (docs/mastra-compatibility.md)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from stepstream import StepContext, Workflow, get_plugin_manager, step
from stepstream.server import create_app, serve_in_thread
from stepstream.storage.sqlite import SQLiteStorage

from ..conformance.traces import Normaliser, assert_same, load_events, load_state

RS = "\x1e"


def records(body: str) -> list[Any]:
    return [json.loads(piece) for piece in body.split(RS) if piece]


def test_list_and_describe(server_url: str) -> None:
    listed = httpx.get(f"{server_url}/api/workflows").json()
    assert list(listed) == ["seqWf", "approvalWf", "localeWf", "failWf"]
    assert list(listed["seqWf"])[:2] == ["name", "steps"]
    info = httpx.get(f"{server_url}/api/workflows/seqWf").json()
    assert list(info) == [
        "steps",
        "allSteps",
        "name",
        "stepGraph",
        "inputSchema",
        "outputSchema",
    ]
    assert info["name"] == "seq-wf" and list(info["steps"]) == ["double", "describe"]
    assert info["stepGraph"] == [
        {"type": "step", "step": {"id": "double"}},
        {"type": "step", "step": {"id": "describe"}},
    ]
    schema = json.loads(info["inputSchema"])["json"]
    assert schema["properties"]["value"]["type"] == "number"


def test_create_run_then_stream_matches_mastra(server_url: str) -> None:
    run_id = httpx.post(
        f"{server_url}/api/workflows/seqWf/create-run?runId=11111111-1111-4111-8111-111111111111"
    ).json()["runId"]
    assert run_id == "11111111-1111-4111-8111-111111111111"
    response = httpx.post(
        f"{server_url}/api/workflows/seqWf/stream?runId={run_id}",
        json={"inputData": {"value": 21}},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=UTF-8"  # Mastra's
    assert response.text.endswith(RS)
    ours, mastra = Normaliser(), Normaliser()
    assert_same(ours(records(response.text)), mastra(load_events("a_sequence")), "stream")
    state = httpx.get(f"{server_url}/api/workflows/seqWf/runs/{run_id}/execution-result").json()
    assert state["status"] == "success" and state["payload"] == {"value": 21}
    assert state["result"] == {"text": "doubled=42"}


def test_start_async_returns_the_workflow_result(server_url: str) -> None:
    result = httpx.post(
        f"{server_url}/api/workflows/localeWf/start-async",
        json={"inputData": {"name": "Ada"}, "runtimeContext": {"locale": "fr"}},
    ).json()
    assert_same(Normaliser()(result), Normaliser()(load_state("j_runtime_context.state")), "state")


@pytest.mark.asyncio
async def test_suspended_stream_stays_open_and_resume_continues_it(server_url: str) -> None:
    async with httpx.AsyncClient(base_url=server_url, timeout=30) as client:
        run_id = (await client.post("/api/workflows/approvalWf/create-run")).json()["runId"]
        seen: list[Any] = []
        suspended = asyncio.Event()

        async def read() -> None:
            async with client.stream(
                "POST",
                f"/api/workflows/approvalWf/stream?runId={run_id}",
                json={"inputData": {"item": "invoice-42"}},
            ) as response:
                buffer = ""
                async for text in response.aiter_text():
                    buffer += text
                    *done, buffer = buffer.split(RS)
                    for piece in done:
                        seen.append(json.loads(piece))
                        if seen[-1]["type"] == "step-suspended":
                            suspended.set()

        reader = asyncio.create_task(read())
        await suspended.wait()
        result = await client.post(
            f"/api/workflows/approvalWf/resume-async?runId={run_id}",
            json={"step": "approve", "resumeData": {"approved": True, "approver": "alice"}},
        )
        await reader
    ours, mastra = Normaliser(), Normaliser()
    assert_same(ours(seen), mastra(load_events("i_suspend_resume")), "one open stream")
    assert_same(ours(result.json()), mastra(load_state("i_suspend_resume.resume-result")), "resume")


def test_failed_run_still_ends_with_finish(server_url: str) -> None:
    run_id = httpx.post(f"{server_url}/api/workflows/failWf/create-run").json()["runId"]
    body = httpx.post(
        f"{server_url}/api/workflows/failWf/stream?runId={run_id}", json={"inputData": {"value": 1}}
    ).text
    types = [r["type"] for r in records(body)]
    assert types[-1] == "finish" and types.count("step-result") == 2


def test_watch_sends_json_strings_and_ends_when_the_run_does(server_url: str) -> None:
    run_id = httpx.post(f"{server_url}/api/workflows/seqWf/create-run").json()["runId"]
    with (
        httpx.Client(base_url=server_url, timeout=30) as client,
        client.stream("GET", f"/api/workflows/seqWf/watch?runId={run_id}") as watching,
    ):
        started = client.post(
            f"/api/workflows/seqWf/start?runId={run_id}", json={"inputData": {"value": 2}}
        )
        assert started.json() == {"message": "Workflow run started"}
        body = watching.read().decode()
    pieces = [json.loads(json.loads(p)) for p in body.split(RS) if p]  # a string holding JSON
    assert all(p["type"] == "watch" and p["runId"] == run_id for p in pieces)
    assert pieces[-1]["payload"]["workflowState"]["status"] == "success"
    steps = [p["payload"]["currentStep"] for p in pieces if "currentStep" in p["payload"]]
    # A step-start's record shows the step as it was then: running, not already finished.
    assert {"id": "double", "status": "running"}.items() <= steps[0].items()
    assert any(s["id"] == "double" and s["status"] == "success" for s in steps)


@pytest.mark.asyncio
async def test_sse_reconnect_with_last_event_id_has_no_gap_and_no_duplicate(
    server_url: str,
) -> None:
    async with httpx.AsyncClient(base_url=server_url, timeout=30) as client:
        run_id = (await client.post("/api/workflows/approvalWf/create-run")).json()["runId"]
        await client.post(
            f"/api/workflows/approvalWf/start-async?runId={run_id}",
            json={"inputData": {"item": "lamp"}},
        )

        async def sse(last: int | None, until: str) -> list[tuple[int, str, Any]]:
            headers = {} if last is None else {"Last-Event-ID": str(last)}
            frames: list[tuple[int, str, Any]] = []
            async with client.stream(
                "GET", f"/api/workflows/approvalWf/runs/{run_id}/events", headers=headers
            ) as response:
                assert response.headers["content-type"].startswith("text/event-stream")
                buffer = ""
                async for text in response.aiter_text():
                    buffer += text
                    *done, buffer = buffer.split("\n\n")
                    for frame in done:
                        if frame.startswith(":"):  # a ping (an SSE comment) on a quiet stream
                            continue
                        fields = dict(line.split(": ", 1) for line in frame.splitlines())
                        frames.append(
                            (int(fields["id"]), fields["event"], json.loads(fields["data"]))
                        )
                        if fields["event"] == until:
                            return frames
            return frames

        first = await sse(None, "step-suspended")
        assert [f[1] for f in first][-1] == "step-suspended"
        cut = first[2][0]  # the client "lost" everything after its third event
        resumed = asyncio.create_task(
            client.post(
                f"/api/workflows/approvalWf/resume-async?runId={run_id}",
                json={"step": ["approve"], "resumeData": {"approved": True, "approver": "bo"}},
            )
        )
        again = await sse(cut, "finish")
        assert (await resumed).json()["status"] == "success"
    seqs = [f[0] for f in first[:3]] + [f[0] for f in again]
    assert seqs == list(range(len(seqs)))
    assert again[-1][1] == "finish"
    assert [f[2] for f in first[3:]] == [f[2] for f in again[: len(first) - 3]]


def test_runs_listing_and_lookup(server_url: str) -> None:
    run_id = (
        httpx.post(
            f"{server_url}/api/workflows/seqWf/start-async", json={"inputData": {"value": 1}}
        ).json()["steps"]
        and None
    )
    listed = httpx.get(f"{server_url}/api/workflows/seqWf/runs").json()
    assert listed["total"] == 1 and listed["runs"][0]["snapshot"]["status"] == "success"
    run_id = listed["runs"][0]["runId"]
    one = httpx.get(f"{server_url}/api/workflows/seqWf/runs/{run_id}").json()
    assert one["workflowName"] == "seqWf" and one["updatedAt"].endswith("Z")


def test_cancel_and_send_event_answer_as_mastra(server_url: str) -> None:
    run_id = httpx.post(f"{server_url}/api/workflows/approvalWf/create-run").json()["runId"]
    httpx.post(
        f"{server_url}/api/workflows/approvalWf/start-async?runId={run_id}",
        json={"inputData": {"item": "x"}},
    )
    sent = httpx.post(
        f"{server_url}/api/workflows/approvalWf/runs/{run_id}/send-event",
        json={"event": "nothing-waits", "data": 1},
    )
    assert sent.json() == {"message": "Workflow run event sent"}
    cancelled = httpx.post(f"{server_url}/api/workflows/approvalWf/runs/{run_id}/cancel")
    assert cancelled.json() == {"message": "Workflow run cancelled"}
    state = httpx.get(f"{server_url}/api/workflows/approvalWf/runs/{run_id}/execution-result")
    assert state.json()["status"] == "canceled"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "error"),
    [
        ("GET", "/api/workflows/nope", None, 404, "Workflow not found"),
        (
            "POST",
            "/api/workflows/seqWf/start?runId=missing",
            {"inputData": {}},
            404,
            "Workflow run not found",
        ),
        ("POST", "/api/workflows/seqWf/start-async", b"{not json", 400, "invalid JSON body"),
        ("POST", "/api/workflows/seqWf/start-async", [1, 2], 400, "must be an object"),
        (
            "POST",
            "/api/workflows/seqWf/start-async",
            {"inputData": {"value": "x"}},
            400,
            "inputData is invalid",
        ),
        (
            "POST",
            "/api/workflows/seqWf/start-async",
            {"runtimeContext": 3},
            422,
            "runtimeContext: Input should be a valid dictionary",
        ),
        (
            "POST",
            "/api/workflows/approvalWf/resume-async?runId=x",
            {},
            404,
            "Workflow run not found",
        ),
        ("GET", "/api/workflows/seqWf/runs/nope", None, 404, "Workflow run not found"),
        ("GET", "/api/workflows/seqWf/runs/nope/events", None, 404, "Workflow run not found"),
    ],
)
def test_malformed_requests_get_clear_4xx(
    server_url: str, method: str, path: str, body: Any, status: int, error: str
) -> None:
    content = body if isinstance(body, bytes) else None
    payload = None if isinstance(body, bytes) or body is None else body
    response = httpx.request(method, server_url + path, json=payload, content=content)
    assert response.status_code == status
    assert error in response.json()["error"]


def test_resume_without_step_and_bad_last_event_id(server_url: str) -> None:
    run_id = httpx.post(f"{server_url}/api/workflows/approvalWf/create-run").json()["runId"]
    httpx.post(
        f"{server_url}/api/workflows/approvalWf/start-async?runId={run_id}",
        json={"inputData": {"item": "x"}},
    )
    no_step = httpx.post(f"{server_url}/api/workflows/approvalWf/resume?runId={run_id}", json={})
    assert (no_step.status_code, no_step.json()) == (
        400,
        {"error": "step required to resume workflow"},
    )
    bad = httpx.get(
        f"{server_url}/api/workflows/approvalWf/runs/{run_id}/events",
        headers={"Last-Event-ID": "soon"},
    )
    assert bad.status_code == 400


def test_bearer_token_is_required_when_configured(secured_url: str) -> None:
    assert httpx.get(f"{secured_url}/api/workflows").status_code == 401
    wrong = httpx.get(f"{secured_url}/api/workflows", headers={"Authorization": "Bearer no"})
    assert wrong.status_code == 401 and wrong.json() == {"error": "missing or invalid bearer token"}
    ok = httpx.get(f"{secured_url}/api/workflows", headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200 and "seqWf" in ok.json()


def test_watch_ends_when_the_run_suspends(server_url: str) -> None:
    run_id = httpx.post(f"{server_url}/api/workflows/approvalWf/create-run").json()["runId"]
    with (
        httpx.Client(base_url=server_url, timeout=30) as client,
        client.stream("GET", f"/api/workflows/approvalWf/watch?runId={run_id}") as watching,
    ):
        client.post(
            f"/api/workflows/approvalWf/start?runId={run_id}", json={"inputData": {"item": "x"}}
        )
        body = watching.read().decode()
    last = [json.loads(json.loads(p)) for p in body.split(RS) if p][-1]
    assert last["payload"]["workflowState"]["status"] == "suspended"
    assert "currentStep" not in last["payload"]


def test_resume_of_a_step_that_is_not_suspended_is_refused_at_once(server_url: str) -> None:
    run_id = httpx.post(f"{server_url}/api/workflows/approvalWf/create-run").json()["runId"]
    httpx.post(
        f"{server_url}/api/workflows/approvalWf/start-async?runId={run_id}",
        json={"inputData": {"item": "x"}},
    )
    wrong = httpx.post(
        f"{server_url}/api/workflows/approvalWf/resume?runId={run_id}", json={"step": "nope"}
    )
    assert wrong.status_code == 409 and "'nope' is not suspended" in wrong.json()["error"]


def test_ended_runs_leave_memory_and_are_never_run_again_after_a_restart(tmp_path: Path) -> None:
    calls: list[int] = []

    @step(id="count")
    async def count(ctx: StepContext[Any]) -> Any:
        calls.append(1)
        return {"n": len(calls)}

    workflows = {"countWf": Workflow(id="count-wf").then(count).commit()}
    pm = get_plugin_manager(load_entrypoints=False)
    db = tmp_path / "runs.db"
    app = create_app(workflows, storage=SQLiteStorage(db), plugin_manager=pm)
    with serve_in_thread(app) as url:
        done = httpx.post(
            f"{url}/api/workflows/countWf/start-async?runId=R1", json={"inputData": {}}
        )
        assert done.json()["result"] == {"n": 1}
        assert app.state.runs.live == {}  # ended: kept in storage only
    restarted = create_app(workflows, storage=SQLiteStorage(db), plugin_manager=pm)
    with serve_in_thread(restarted) as url:
        again = httpx.post(f"{url}/api/workflows/countWf/stream?runId=R1", json={"inputData": {}})
        assert again.status_code == 409 and "has ended" in again.json()["error"]
        state = httpx.get(f"{url}/api/workflows/countWf/runs/R1/execution-result").json()
        assert state["result"] == {"n": 1}
    assert calls == [1]
