"""``POST /api/workflows/{id}/runs/{runId}/time-travel``: a stored run forked at a step."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from stepstream import StepContext, Workflow, get_plugin_manager, step
from stepstream.server import create_app, serve_in_thread
from stepstream.storage.sqlite import SQLiteStorage

calls: list[str] = []


class Value(BaseModel):
    value: int


@step(id="double", input_schema=Value)
def double(ctx: StepContext[Value]) -> Any:
    calls.append("double")
    return {"doubled": ctx.input_data.value * 2}


@step(id="describe")
def describe(ctx: StepContext[Any]) -> Any:
    calls.append("describe")
    return {"text": f"doubled={ctx.input_data['doubled']}"}


@step(id="shout")
def shout(ctx: StepContext[Any]) -> Any:
    return {"text": str(ctx.input_data).upper()}


def serving(db: Path, *steps: Any) -> Iterator[str]:
    wf = Workflow(id="seq-wf")
    for s in steps or (double, describe):
        wf.then(s)
    pm = get_plugin_manager(load_entrypoints=False)
    app = create_app({"seqWf": wf.commit()}, storage=SQLiteStorage(db), plugin_manager=pm)
    with serve_in_thread(app) as url:
        yield url + "/api/workflows/seqWf"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[str]:
    calls.clear()
    yield from serving(tmp_path / "runs.db")


def finished(api: str, run_id: str) -> list[dict[str, Any]]:
    """The run's events, read from its SSE stream up to ``finish`` (the run has then ended)."""
    events = []
    with httpx.stream("GET", f"{api}/runs/{run_id}/events", timeout=30) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
                if events[-1]["type"] == "finish":
                    break
    return events


def source_run(api: str) -> str:
    done = httpx.post(f"{api}/start-async?runId=SRC", json={"inputData": {"value": 2}})
    assert done.json()["result"] == {"text": "doubled=4"}
    calls.clear()
    return "SRC"


def test_a_fork_shows_the_stored_steps_and_runs_from_the_chosen_one(api: str) -> None:
    source = source_run(api)
    answer = httpx.post(f"{api}/runs/{source}/time-travel", json={"step": "describe"})
    assert answer.status_code == 200, answer.text
    fork = answer.json()["runId"]
    assert fork != source and answer.json()["message"] == "Workflow run forked"
    events = finished(api, fork)
    assert [e["payload"]["id"] for e in events if e["type"] == "step-start"] == ["describe"]
    assert calls == ["describe"]
    state = httpx.get(f"{api}/runs/{fork}/execution-result").json()
    stored = httpx.get(f"{api}/runs/{source}/execution-result").json()
    assert state["status"] == "success" and state["result"] == {"text": "doubled=4"}
    assert state["steps"]["double"] == stored["steps"]["double"]  # copied as stored
    row = httpx.get(f"{api}/runs/{fork}").json()["snapshot"]
    assert row["forkedFrom"] == {"runId": source, "stepId": "describe"}
    assert "forkedFrom" not in httpx.get(f"{api}/runs/{source}").json()["snapshot"]
    listed = httpx.get(f"{api}/runs").json()
    assert {r["runId"] for r in listed["runs"]} == {source, fork}


def test_an_edited_input_is_used_and_a_bad_one_refused(api: str) -> None:
    source = source_run(api)
    edited = httpx.post(
        f"{api}/runs/{source}/time-travel", json={"step": "double", "inputData": {"value": 5}}
    )
    assert edited.status_code == 200, edited.text
    finished(api, edited.json()["runId"])
    state = httpx.get(f"{api}/runs/{edited.json()['runId']}/execution-result").json()
    assert state["steps"]["double"]["payload"] == {"value": 5}
    assert state["result"] == {"text": "doubled=10"}


def test_errors_are_clear_and_make_no_run(api: str) -> None:
    source = source_run(api)
    cases = [
        ({"step": "nope"}, 409, "has no top-level step 'nope'"),
        ({"step": ["double", "x"]}, 409, "'double' of workflow 'seq-wf' is not a nested workflow"),
        ({"step": "double", "inputData": {"value": "x"}}, 400, "inputData is invalid"),
        ({}, 422, "step"),
        ({"step": "describe", "replayModels": "maybe"}, 422, "replayModels"),
    ]
    for body, status, message in cases:
        answer = httpx.post(f"{api}/runs/{source}/time-travel", json=body)
        assert answer.status_code == status and message in answer.json()["error"], answer.text
    missing = httpx.post(f"{api}/runs/NOPE/time-travel", json={"step": "double"})
    assert missing.status_code == 404
    assert httpx.get(f"{api}/runs").json()["total"] == 1
    assert calls == []
    spec = httpx.get(api.replace("/api/workflows/seqWf", "/openapi.json")).json()
    operation = spec["paths"]["/api/workflows/{workflow_id}/runs/{run_id}/time-travel"]["post"]
    assert "TimeTravelBody" in json.dumps(operation["requestBody"])


def test_a_workflow_that_changed_since_the_run_is_refused(tmp_path: Path) -> None:
    calls.clear()
    db = tmp_path / "runs.db"
    for api in serving(db):
        source_run(api)
    for api in serving(db, double, shout, describe):  # a step added before `describe`
        answer = httpx.post(f"{api}/runs/SRC/time-travel", json={"step": "describe"})
        assert answer.status_code == 409
        assert "no longer matches the stored run" in answer.json()["error"]
        assert "step 'shout', which comes before it, never ran" in answer.json()["error"]
        never = httpx.post(f"{api}/runs/SRC/time-travel", json={"step": "shout"})
        assert never.status_code == 409 and "never ran" in never.json()["error"]
    assert calls == []
