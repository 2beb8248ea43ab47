"""Three real ``stepstream serve`` processes on one PostgreSQL database: clients (the Python
client and ``@mastra/client-js``) create, start, stream, watch, cancel, resume and send events
through different instances; every run ends right, every step runs once, every stream equals
the run's stored log. Then one instance is SIGKILLed mid-run: its runs finish on the others,
and the streams that followed them through a surviving instance end with no gap."""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from stepstream.client import AsyncClient
from stepstream.events import Event
from stepstream.storage import StoredEvent
from stepstream.storage.postgres import PostgresStorage

from .conftest import Instance, done

CLIENT_DIR = Path(__file__).resolve().parents[1] / "server" / "mastra_client"
LIMIT = 60.0  # seconds before a test that should have seen something fails (not a sync)


async def stored_log(db: str, run_id: str) -> list[StoredEvent]:
    storage = PostgresStorage(db)
    try:
        return await storage.read_events(run_id)
    finally:
        await storage.close()


def same_as_log(stream: list[Event], log: list[StoredEvent]) -> None:
    """A stream equals the log: the same seqs, from 0 with no gap, the same wire events."""
    assert [e.seq for e in stream] == [e.seq for e in log] == list(range(len(log)))
    assert [e.to_wire() for e in stream] == [e.wire for e in log]
    assert log[0].type == "start" and log[-1].type == "finish"


async def follow(url: str, key: str, run_id: str, seen: asyncio.Event | None = None,
                 until: str = "first") -> list[Event]:  # fmt: skip
    """A run's SSE events through ``url`` to its end; ``seen`` is set once ``until``'s
    ``step-result`` arrived."""
    out = []
    async with AsyncClient(url) as client:
        async for event in client.workflow(key).events(run_id):
            out.append(event)
            wire = event.to_wire()
            if seen is not None and event.type == "step-result" and wire["payload"]["id"] == until:
                seen.set()
    return out


def open_gate(marks: Path, run_id: str) -> None:
    (marks / f"go-{run_id}").touch()


async def started_on(url: str, key: str) -> str:
    async with AsyncClient(url) as client:
        run_id = await client.workflow(key).create_run()
        await client.workflow(key).start(run_id, {})
    return run_id


@pytest.mark.asyncio
async def test_any_instance_serves_any_run(
    cluster: list[Instance], db: str, tmp_path: Path
) -> None:
    rng = random.Random(16)
    urls = [i.url for i in cluster]

    # Started on one instance, followed live through the two others at once.
    a, b, c = rng.sample(urls, 3)
    run_id = await started_on(a, "gated")
    seen = [asyncio.Event(), asyncio.Event()]
    followers = [
        asyncio.ensure_future(follow(u, "gated", run_id, s))
        for u, s in zip((b, c), seen, strict=True)
    ]
    await asyncio.wait_for(asyncio.gather(*(s.wait() for s in seen)), LIMIT)  # live: mid-gate
    open_gate(tmp_path, run_id)
    streams = await asyncio.wait_for(asyncio.gather(*followers), LIMIT)
    log = await stored_log(db, run_id)
    for stream in streams:
        same_as_log(stream, log)
    async with AsyncClient(rng.choice(urls)) as client:
        assert (await client.workflow("gated").execution_result(run_id))["status"] == "success"

    # Canceled through another instance while in its gate; a third one's follower ends.
    a, b, c = rng.sample(urls, 3)
    canceled = await started_on(a, "gated")
    seen_c = asyncio.Event()
    follower = asyncio.ensure_future(follow(c, "gated", canceled, seen_c))
    await asyncio.wait_for(seen_c.wait(), LIMIT)
    async with AsyncClient(b) as client:
        await client.workflow("gated").cancel(canceled)
        assert (await client.workflow("gated").execution_result(canceled))["status"] == "canceled"
    same_as_log(await asyncio.wait_for(follower, LIMIT), await stored_log(db, canceled))

    # Suspended by start-async on one, resumed through another, read back through a third.
    a, b, c = rng.sample(urls, 3)
    async with AsyncClient(a) as client:
        first = await client.workflow("approval").start_async({})
    assert first.status == "suspended"
    async with AsyncClient(b) as client:
        resumed = await client.workflow("approval").resume_async(first.run_id, "approve", {"by": 7})
    assert resumed.status == "success" and resumed.result == {"by": 7}
    same_as_log(await follow(c, "approval", first.run_id), await stored_log(db, first.run_id))

    # An event sent through another instance while the run is still in its gate.
    a, b, c = rng.sample(urls, 3)
    evented = await started_on(a, "evented")
    seen_e = asyncio.Event()
    follower = asyncio.ensure_future(follow(c, "evented", evented, seen_e))
    await asyncio.wait_for(seen_e.wait(), LIMIT)
    async with AsyncClient(b) as client:
        await client.workflow("evented").send_event(evented, "go", {"x": 2})
    open_gate(tmp_path, evented)
    same_as_log(await asyncio.wait_for(follower, LIMIT), await stored_log(db, evented))
    async with AsyncClient(a) as client:
        got = await client.workflow("evented").execution_result(evented)
    assert got["status"] == "success" and got["result"] == {"got": {"x": 2}}

    # The same through @mastra/client-js, a client per instance.
    report = mastra_client(urls, tmp_path)
    watched = report["watched"]
    assert watched["result"]["status"] == "success"
    final = watched["records"][-1]["payload"]["workflowState"]
    assert final["status"] == "success" and final["result"] == {"n": 3}
    assert report["canceled"]["result"]["status"] == "canceled"
    assert report["evented"]["result"]["status"] == "success"
    assert report["evented"]["result"]["result"] == {"got": {"x": 1}}

    # Every step ran once per run; none of what was canceled went on.
    ran = Counter((r, s) for r, s, _ in done(tmp_path))
    assert all(n == 1 for n in ran.values()), ran
    expected = {
        run_id: {"first", "gate", "last"},
        canceled: {"first"},
        first.run_id: {"approve"},
        evented: {"first", "gate", "on-go"},
        watched["runId"]: {"first", "gate", "last"},
        report["canceled"]["runId"]: {"first"},
        report["evented"]["runId"]: {"first", "gate", "on-go"},
    }
    assert {r: {s for (rr, s) in ran if rr == r} for r in expected} == expected


def mastra_client(urls: list[str], marks: Path) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None or not (CLIENT_DIR / "node_modules" / "@mastra" / "client-js").is_dir():
        if os.environ.get("CI"):
            pytest.fail("node and tests/server/mastra_client/node_modules are needed")
        pytest.skip("node and tests/server/mastra_client/node_modules are needed")
    report = marks / "mastra.json"
    env = {**os.environ, "CLIENT_DIR": str(CLIENT_DIR), "URLS": json.dumps(urls),
           "MARKS": str(marks), "REPORT": str(report)}  # fmt: skip
    finished = subprocess.run(
        [node, str(Path(__file__).with_name("mastra_cluster.mjs"))],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert finished.returncode == 0, finished.stderr
    result: dict[str, Any] = json.loads(report.read_text())
    return result


@pytest.mark.asyncio
async def test_a_killed_instance_s_runs_finish_elsewhere_and_their_streams_have_no_gap(
    cluster: list[Instance], db: str, tmp_path: Path
) -> None:
    doomed, survivor, _ = cluster
    run_ids = [await started_on(doomed.url, "gated") for _ in range(3)]
    seen = [asyncio.Event() for _ in run_ids]
    followers = [
        asyncio.ensure_future(follow(survivor.url, "gated", r, s))
        for r, s in zip(run_ids, seen, strict=True)
    ]
    await asyncio.wait_for(asyncio.gather(*(s.wait() for s in seen)), LIMIT)  # all in the gate
    doomed.stop(signal.SIGKILL)
    for run_id in run_ids:
        open_gate(tmp_path, run_id)
    streams = await asyncio.wait_for(asyncio.gather(*followers), LIMIT)
    for run_id, stream in zip(run_ids, streams, strict=True):
        same_as_log(stream, await stored_log(db, run_id))
        assert stream[-2].to_wire()["payload"]["id"] == "last"
    ran = done(tmp_path)
    for run_id in run_ids:
        steps = [(s, pid) for r, s, pid in ran if r == run_id]
        assert [s for s, _ in steps] == ["first", "gate", "last"], steps  # each once
        assert steps[0][1] == doomed.proc.pid
        assert all(pid != doomed.proc.pid for _, pid in steps[1:])  # taken over
