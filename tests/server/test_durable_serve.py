"""Durable runs across real ``stepstream serve`` processes on one database (SQLite and
PostgreSQL): a resume sent to two servers at once runs the step once (one answer 200, the
other 409); a server killed with runs in flight, started again, finishes them by itself."""

from __future__ import annotations

import asyncio
import concurrent.futures
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from stepstream.storage import Storage
from stepstream.storage.postgres import PostgresStorage
from stepstream.storage.sqlite import SQLiteStorage

from ..serving import ServeProcess

TARGET = "tests.server.durable_workflows"


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The ``--db`` of this test's own store."""
    if request.param == "sqlite":
        yield str(tmp_path / "runs.db")
        return
    import psycopg

    dsn: str = request.getfixturevalue("postgres_dsn")
    schema = f"serve_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    yield f"{dsn}?options=-csearch_path%3D{schema}"


def storage_of(db: str) -> Storage:
    return PostgresStorage(db) if db.startswith("postgresql://") else SQLiteStorage(db)


class Server(ServeProcess):
    """A ``stepstream serve`` child process of the durable workflows, started and ready."""

    def __init__(self, db: str, marks: Path) -> None:
        super().__init__(TARGET, db, marks)
        self.wait_ready(30)


def done(marks: Path) -> list[str]:
    path = marks / "done.txt"
    return [line.split()[0] for line in path.read_text().splitlines()] if path.exists() else []


def test_a_resume_sent_to_two_servers_at_once_runs_once(db: str, tmp_path: Path) -> None:
    servers = [Server(db, tmp_path), Server(db, tmp_path)]
    try:
        first = servers[0].url + "/api/workflows/approval"
        started = httpx.post(f"{first}/start-async", json={"inputData": {}}, timeout=30).json()
        assert started["status"] == "suspended"
        run_id = httpx.get(f"{first}/runs", timeout=30).json()["runs"][0]["runId"]
        for server in servers:  # both hold the run in memory: each thinks it may resume it
            assert (
                httpx.get(f"{server.url}/api/workflows/approval/runs/{run_id}").status_code == 200
            )

        def resume(server: Server) -> httpx.Response:
            return httpx.post(
                f"{server.url}/api/workflows/approval/resume-async?runId={run_id}",
                json={"step": "approve", "resumeData": {"by": server.port}},
                timeout=30,
            )

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(resume, servers))
        codes = sorted(a.status_code for a in answers)
        assert codes == [200, 409], [a.text for a in answers]
        [won] = [a for a in answers if a.status_code == 200]
        [lost] = [a for a in answers if a.status_code == 409]
        assert won.json()["status"] == "success"
        # The loser found the run held by the winner, changed, or already ended: a clear 409.
        assert any(why in lost.json()["error"] for why in ("executed by", "changed", "success"))
        assert done(tmp_path) == ["approve"]
        stored = httpx.get(f"{servers[1].url}/api/workflows/approval/runs/{run_id}").json()
        assert stored["snapshot"]["status"] == "success"
    finally:
        for server in servers:
            server.stop()


def test_a_killed_server_restarted_finishes_its_runs(db: str, tmp_path: Path) -> None:
    server = Server(db, tmp_path)
    api = server.url + "/api/workflows/five"
    run_ids = []
    try:
        for _ in range(3):
            run_id = httpx.post(f"{api}/create-run").json()["runId"]
            answer = httpx.post(f"{api}/start?runId={run_id}", json={"inputData": {"n": 0}})
            assert answer.status_code == 200
            run_ids.append(run_id)
        for run_id in run_ids:  # every run is in `hold` (stored: SSE shows stored events only)
            with httpx.stream("GET", f"{api}/runs/{run_id}/events", timeout=30) as sse:
                for line in sse.iter_lines():
                    if line.startswith("data: ") and '"id": "hold"' in line:
                        break
    finally:
        server.stop(signal.SIGKILL)
    assert sorted(done(tmp_path)) == sorted(["s1", "s2"] * 3)

    (tmp_path / "go").touch()
    again = Server(db, tmp_path)  # recovers the interrupted runs at start
    try:
        api = again.url + "/api/workflows/five"
        deadline = time.monotonic() + 60
        for run_id in run_ids:  # waits for each run's end (a condition, with a deadline)
            while httpx.get(f"{api}/runs/{run_id}").json()["snapshot"]["status"] != "success":
                assert time.monotonic() < deadline, f"run {run_id} was not finished"
                time.sleep(0.05)
        ran = done(tmp_path)
        for step_id in ("s1", "s2", "hold", "s4", "s5"):
            assert ran.count(step_id) == 3, (step_id, ran)  # each step once per run
        for run_id in run_ids:
            body = httpx.get(f"{api}/runs/{run_id}/events", timeout=30).text
            seqs = [int(line[4:]) for line in body.splitlines() if line.startswith("id: ")]
            assert seqs == list(range(len(seqs))), "a gap in the replay"
            log = asyncio.run(_log(db, run_id))
            assert seqs == [e.seq for e in log]
            assert log[-1].type == "finish"
    finally:
        again.stop()


async def _log(db: str, run_id: str) -> list:  # type: ignore[type-arg]
    store = storage_of(db)
    try:
        return await store.read_events(run_id)
    finally:
        await store.close()


def test_a_run_id_stored_for_another_workflow_is_never_overwritten(tmp_path: Path) -> None:
    from stepstream import get_plugin_manager
    from stepstream.server import create_app, serve_in_thread

    from .durable_workflows import approval, five

    storage = SQLiteStorage(tmp_path / "runs.db")
    app = create_app(
        {"approval": approval, "five": five},
        storage=storage,
        plugin_manager=get_plugin_manager(load_entrypoints=False),
    )
    with serve_in_thread(app) as url:
        first = httpx.post(f"{url}/api/workflows/approval/start-async?runId=shared", json={})
        assert first.json()["status"] == "suspended"
        other = httpx.post(
            f"{url}/api/workflows/five/start-async?runId=shared", json={"inputData": {"n": 0}}
        )
        assert other.status_code == 409 and "'approval'" in other.json()["error"]
        kept = httpx.get(f"{url}/api/workflows/approval/runs/shared").json()
        assert kept["snapshot"]["status"] == "suspended"
