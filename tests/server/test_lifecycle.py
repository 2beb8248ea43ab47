"""The live-run set stays bounded; shutdown drains background work and closes the storage;
the OpenAPI document, the health route and the metrics route."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from stepstream import StepContext, Workflow, get_plugin_manager, step
from stepstream.server import create_app, serve_in_thread
from stepstream.server.app import ENDPOINTS
from stepstream.storage.sqlite import SQLiteStorage

from ..conformance import workflows as cases


def _app(**options: Any) -> Any:
    return create_app(
        {"seqWf": cases.a_sequence(), "approvalWf": cases.i_suspend_resume()},
        plugin_manager=options.pop("pm", None) or get_plugin_manager(load_entrypoints=False),
        **options,
    )


def test_idle_runs_leave_memory_and_stored_ones_come_back() -> None:
    app = _app(idle_timeout=0)
    runs = app.state.runs
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        never = client.post("/api/workflows/seqWf/create-run").json()["runId"]
        assert ("seqWf", never) in runs.live
        suspended = client.post(
            "/api/workflows/approvalWf/start-async", json={"inputData": {"item": "a"}}
        )
        assert suspended.json()["status"] == "suspended"
        assert ("seqWf", never) not in runs.live  # never started, idle: out of memory
        done = client.post("/api/workflows/seqWf/start-async", json={"inputData": {"value": 1}})
        listed = client.get("/api/workflows/seqWf/runs").json()["runs"]
        ended = listed[0]["runId"]
        assert done.status_code == 200
        events = client.get(f"/api/workflows/seqWf/runs/{ended}/events").text
        assert "event: finish" in events
        client.get("/health")
        assert runs.live == {}  # the ended run read over SSE, and the suspended one: gone
        paused = client.get("/api/workflows/approvalWf/runs").json()["runs"][0]["runId"]
        resumed = client.post(
            f"/api/workflows/approvalWf/resume-async?runId={paused}",
            json={"step": "approve", "resumeData": {"approved": True, "approver": "x"}},
        )
        assert resumed.json()["status"] == "success"  # loaded again from storage
        listed = client.get("/api/workflows/seqWf/runs").json()["runs"]
        # Stored pending by create-run: listed, loaded again, and started, when asked for.
        assert {r["runId"]: r["snapshot"]["status"] for r in listed}[never] == "pending"
        start = f"/api/workflows/seqWf/start?runId={never}"
        assert client.post(start, json={"inputData": {"value": 1}}).status_code == 200
        again = client.post(start, json={"inputData": {"value": 1}})
        assert again.status_code == 409 and "already started" in again.json()["error"]


def test_the_live_set_is_capped_and_runs_in_use_never_leave() -> None:
    app = _app(max_live=2, idle_timeout=3600)
    runs = app.state.runs
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        first = client.post("/api/workflows/seqWf/create-run").json()["runId"]
        client.post("/api/workflows/seqWf/create-run")
        third = client.post("/api/workflows/seqWf/create-run").json()["runId"]
        assert ("seqWf", first) not in runs.live and ("seqWf", third) in runs.live
        held = []
        for _ in range(2):
            answer = client.post(
                "/api/workflows/approvalWf/start-async", json={"inputData": {"item": "a"}}
            )
            held.append(answer.json())
        ids = [r["runId"] for r in client.get("/api/workflows/approvalWf/runs").json()["runs"]]
        with (
            client.stream("GET", f"/api/workflows/approvalWf/runs/{ids[0]}/events") as a,
            client.stream("GET", f"/api/workflows/approvalWf/runs/{ids[1]}/events") as b,
        ):
            readers = [a.iter_raw(), b.iter_raw()]  # kept: a dropped iterator closes its stream
            assert all(b"event: start" in next(reader) for reader in readers)
            full = client.post("/api/workflows/seqWf/create-run")
            assert full.status_code == 503 and "2 live runs" in full.json()["error"]


@step(id="slow")
async def slow(ctx: StepContext[Any]) -> Any:
    await asyncio.sleep(ctx.input_data["seconds"])  # the work itself, not a synchronisation
    return {"slept": ctx.input_data["seconds"]}


def test_shutdown_drains_background_runs_then_closes_the_storage(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    storage = SQLiteStorage(db)
    workflows = {"slowWf": Workflow(id="slow-wf").then(slow).commit()}
    app = create_app(
        workflows, storage=storage, plugin_manager=get_plugin_manager(load_entrypoints=False)
    )
    with serve_in_thread(app) as url:
        run_id = httpx.post(f"{url}/api/workflows/slowWf/create-run").json()["runId"]
        started = httpx.post(
            f"{url}/api/workflows/slowWf/start?runId={run_id}", json={"inputData": {"seconds": 0.3}}
        )
        assert started.json() == {"message": "Workflow run started"}
    assert storage._conns == {}  # closed by the lifespan
    snapshot = asyncio.run(_load(db, run_id))
    assert snapshot is not None and snapshot.status == "success"  # it was let finish


def test_a_host_app_that_mounts_the_app_runs_its_routes_and_its_lifespan(tmp_path: Path) -> None:
    # The recipe of create_app's docstring: the host passes itself to the lifespan, and the
    # routes see the mounted app, so both must reach the mounted app's own runs.
    from starlette.applications import Starlette
    from starlette.routing import Mount

    storage = SQLiteStorage(tmp_path / "runs.db")
    inner = create_app(
        {"slowWf": Workflow(id="slow-wf").then(slow).commit()},
        storage=storage,
        plugin_manager=get_plugin_manager(load_entrypoints=False),
    )
    host = Starlette(routes=[Mount("/wf", inner)], lifespan=inner.router.lifespan_context)
    with serve_in_thread(host) as url:
        run_id = httpx.post(f"{url}/wf/api/workflows/slowWf/create-run").json()["runId"]
        started = httpx.post(
            f"{url}/wf/api/workflows/slowWf/start?runId={run_id}",
            json={"inputData": {"seconds": 0.2}},
        )
        assert started.json() == {"message": "Workflow run started"}
        assert httpx.get(f"{url}/wf/health").json()["status"] == "ok"
    assert storage._conns == {}  # closed by the mounted app's lifespan, run by the host
    snapshot = asyncio.run(_load(tmp_path / "runs.db", run_id))
    assert snapshot is not None and snapshot.status == "success"  # let finish first


def test_runs_still_at_work_after_the_grace_are_not_stored_as_canceled(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    workflows = {"slowWf": Workflow(id="slow-wf").then(slow).commit()}
    app = create_app(
        workflows,
        storage=SQLiteStorage(db),
        plugin_manager=get_plugin_manager(load_entrypoints=False),
        shutdown_grace=0.05,
    )
    with serve_in_thread(app) as url:
        run_id = httpx.post(f"{url}/api/workflows/slowWf/create-run").json()["runId"]
        httpx.post(
            f"{url}/api/workflows/slowWf/start?runId={run_id}", json={"inputData": {"seconds": 30}}
        )
    snapshot = asyncio.run(_load(db, run_id))
    # Not `canceled`: let go where it stood, for the next server process to finish.
    assert snapshot is not None and snapshot.status == "interrupted"
    assert snapshot.owner is None and snapshot.state["input"] == {"seconds": 30}


async def _load(db: Path, run_id: str) -> Any:
    storage = SQLiteStorage(db)
    try:
        return await storage.load_run(run_id)
    finally:
        await storage.close()


def test_openapi_describes_every_route_and_body() -> None:
    with serve_in_thread(_app()) as url:
        document = httpx.get(f"{url}/openapi.json").json()
    assert document["openapi"].startswith("3.")
    for endpoint in ENDPOINTS:
        assert endpoint.method.lower() in document["paths"][endpoint.path]
    start = document["paths"]["/api/workflows/{workflow_id}/start-async"]["post"]
    assert start["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/StartBody"
    }
    body = document["components"]["schemas"]["StartBody"]
    assert set(body["properties"]) == {"inputData", "runtimeContext"}
    assert document["components"]["schemas"]["SendEventBody"]["required"] == ["event"]


def test_every_route_is_a_documented_endpoint_and_every_endpoint_is_routed() -> None:
    from stepstream.server.app import HANDLERS

    assert set(HANDLERS) == {endpoint.path for endpoint in ENDPOINTS}
    routed = {(r.path, m) for r in _app().routes if hasattr(r, "methods") for m in r.methods}
    for endpoint in ENDPOINTS:
        assert (endpoint.path, endpoint.method) in routed


class BreakableStorage(SQLiteStorage):
    """An SQLite store that fails every listing once ``broken`` is set."""

    broken = False

    async def list_runs(self, **options: Any) -> Any:
        if self.broken:
            raise OSError("disk on fire")
        return await super().list_runs(**options)


def test_health_answers_and_says_when_the_storage_does_not() -> None:
    storage = BreakableStorage(":memory:")
    with serve_in_thread(_app(storage=storage)) as url:
        assert httpx.get(f"{url}/health").json() == {"status": "ok", "liveRuns": 0}
        storage.broken = True
        broken = httpx.get(f"{url}/health")
    assert broken.status_code == 503 and broken.json() == {"error": "the storage does not answer"}


def test_metrics_are_served_in_prometheus_format_when_the_plugin_is_on() -> None:
    pm = get_plugin_manager(load_entrypoints=False, plugins=["metrics"])
    with serve_in_thread(_app(pm=pm)) as url:
        httpx.post(f"{url}/api/workflows/seqWf/start-async", json={"inputData": {"value": 1}})
        metrics = httpx.get(f"{url}/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "# TYPE stepstream_" in metrics.text
    with serve_in_thread(_app()) as url:
        off = httpx.get(f"{url}/metrics")
    assert off.status_code == 404 and off.json() == {"error": "the metrics plugin is not on"}
