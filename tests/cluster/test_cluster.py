"""Three real ``stepstream serve`` processes on one PostgreSQL database: clients (the Python
client and ``@mastra/client-js``) create each run through one instance and start, stream,
watch, cancel, resume and send events to it through others (random, seeded); every run ends
right, every step runs once, every stream equals the run's stored log. Then one instance is
SIGKILLed mid-run: its runs finish on the others, and the streams that followed them through a
surviving instance end with no gap."""

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
from stepstream.errors import ClientError
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


async def created_on(url: str, key: str) -> str:
    """A run created (stored pending) through ``url``, to be started through another."""
    async with AsyncClient(url) as client:
        return await client.workflow(key).create_run()


async def start_on(url: str, key: str, run_id: str) -> None:
    async with AsyncClient(url) as client:
        await client.workflow(key).start(run_id, {})


async def streamed(url: str, key: str, run_id: str) -> list[Event]:
    """The run started and streamed through ``url`` (``POST .../stream``) to its end."""
    async with AsyncClient(url) as client:
        return [event async for event in client.workflow(key).stream({}, run_id=run_id)]


async def watched(url: str, key: str, run_id: str) -> list[dict[str, Any]]:
    async with AsyncClient(url) as client:
        return [record async for record in client.workflow(key).watch(run_id)]


async def result_of(url: str, key: str, run_id: str) -> dict[str, Any]:
    async with AsyncClient(url) as client:
        return await client.workflow(key).execution_result(run_id)


@pytest.mark.asyncio
async def test_any_instance_serves_any_run(
    cluster: list[Instance], db: str, tmp_path: Path
) -> None:
    """Each run is created through one instance and started, streamed, watched, canceled,
    resumed and sent events through others, chosen at random (seeded)."""
    rng = random.Random(16)
    urls = [i.url for i in cluster]

    def spread() -> list[str]:
        return rng.sample(urls, 3)  # creator, starter (the owner), a third instance

    # Followed and watched through two instances from before its start through a third.
    a, b, c = spread()
    run_id = await created_on(a, "gated")
    seen = [asyncio.Event(), asyncio.Event()]
    followers = [
        asyncio.ensure_future(follow(u, "gated", run_id, s))
        for u, s in zip((a, c), seen, strict=True)
    ]
    watcher = asyncio.ensure_future(watched(c, "gated", run_id))
    await start_on(b, "gated", run_id)
    await asyncio.wait_for(asyncio.gather(*(s.wait() for s in seen)), LIMIT)  # live: mid-gate
    open_gate(tmp_path, run_id)
    streams = await asyncio.wait_for(asyncio.gather(*followers), LIMIT)
    log = await stored_log(db, run_id)
    for stream in streams:
        same_as_log(stream, log)
    records = await asyncio.wait_for(watcher, LIMIT)
    assert records[-1]["payload"]["workflowState"]["status"] == "success"
    assert (await result_of(rng.choice(urls), "gated", run_id))["status"] == "success"

    # Streamed (started by POST .../stream) through another instance, followed through a third.
    a, b, c = spread()
    by_stream = await created_on(a, "gated")
    seen_s = asyncio.Event()
    follower = asyncio.ensure_future(follow(c, "gated", by_stream, seen_s))
    streaming = asyncio.ensure_future(streamed(b, "gated", by_stream))
    await asyncio.wait_for(seen_s.wait(), LIMIT)
    open_gate(tmp_path, by_stream)
    same_as_log(await asyncio.wait_for(streaming, LIMIT), await stored_log(db, by_stream))
    same_as_log(await asyncio.wait_for(follower, LIMIT), await stored_log(db, by_stream))

    # Asked to start through two instances at once: one starts it, the other answers 409.
    a, b, c = spread()
    raced = await created_on(a, "gated")
    answers = await asyncio.gather(
        start_on(b, "gated", raced), start_on(c, "gated", raced), return_exceptions=True
    )
    refused = [x for x in answers if isinstance(x, BaseException)]
    assert len(refused) == 1 and isinstance(refused[0], ClientError), answers
    assert refused[0].status == 409, refused[0]
    seen_r = asyncio.Event()
    follower = asyncio.ensure_future(follow(a, "gated", raced, seen_r))
    await asyncio.wait_for(seen_r.wait(), LIMIT)
    open_gate(tmp_path, raced)
    same_as_log(await asyncio.wait_for(follower, LIMIT), await stored_log(db, raced))

    # Canceled through the creator while in its gate on the starter; a third one's follower ends.
    a, b, c = spread()
    canceled = await created_on(a, "gated")
    await start_on(b, "gated", canceled)
    seen_c = asyncio.Event()
    follower = asyncio.ensure_future(follow(c, "gated", canceled, seen_c))
    await asyncio.wait_for(seen_c.wait(), LIMIT)
    async with AsyncClient(a) as client:
        await client.workflow("gated").cancel(canceled)
        assert (await client.workflow("gated").execution_result(canceled))["status"] == "canceled"
    same_as_log(await asyncio.wait_for(follower, LIMIT), await stored_log(db, canceled))

    # Suspended by start-async through one, resumed through another (resume-async, then
    # resume, which answers at once), read back through a third.
    resumed_ids = []
    for wait in (True, False):
        a, b, c = spread()
        suspended = await created_on(a, "approval")
        async with AsyncClient(b) as client:
            first = await client.workflow("approval").start_async({}, run_id=suspended)
        assert first.status == "suspended"
        async with AsyncClient(c) as client:
            if wait:
                resumed = await client.workflow("approval").resume_async(
                    suspended, "approve", {"by": 7}
                )
                assert resumed.status == "success" and resumed.result == {"by": 7}
            else:
                await client.workflow("approval").resume(suspended, "approve", {"by": 8})
        same_as_log(await follow(a, "approval", suspended), await stored_log(db, suspended))
        got = await result_of(rng.choice(urls), "approval", suspended)
        assert (got["status"], got["result"]) == ("success", {"by": 7 if wait else 8})
        resumed_ids.append(suspended)

    # An event sent through the creator while the run is still in its gate on the starter.
    a, b, c = spread()
    evented = await created_on(a, "evented")
    await start_on(b, "evented", evented)
    seen_e = asyncio.Event()
    follower = asyncio.ensure_future(follow(c, "evented", evented, seen_e))
    await asyncio.wait_for(seen_e.wait(), LIMIT)
    async with AsyncClient(a) as client:
        await client.workflow("evented").send_event(evented, "go", {"x": 2})
    open_gate(tmp_path, evented)
    same_as_log(await asyncio.wait_for(follower, LIMIT), await stored_log(db, evented))
    got = await result_of(rng.choice(urls), "evented", evented)
    assert got["status"] == "success" and got["result"] == {"got": {"x": 2}}

    # The same through @mastra/client-js, a client per instance, roles drawn the same way.
    plan = {name: rng.sample(range(3), 3) for name in MASTRA_CASES}
    report = mastra_client(urls, plan, tmp_path)
    watched_js = report["watched"]
    assert watched_js["result"]["status"] == "success"
    final = watched_js["records"][-1]["payload"]["workflowState"]
    assert final["status"] == "success" and final["result"] == {"n": 3}
    assert report["canceled"]["result"]["status"] == "canceled"
    assert report["evented"]["result"]["status"] == "success"
    assert report["evented"]["result"]["result"] == {"got": {"x": 1}}
    assert report["resumed"]["suspended"]["status"] == "suspended"
    assert report["resumed"]["result"]["status"] == "success"
    assert report["resumed"]["result"]["result"] == {"by": 9}
    streamed_js = report["streamed"]
    assert streamed_js["chunks"] == [e.wire for e in await stored_log(db, streamed_js["runId"])]
    assert streamed_js["chunks"][-1]["type"] == "finish"

    # Every step ran once per run; none of what was canceled went on.
    ran = Counter((r, s) for r, s, _ in done(tmp_path))
    assert all(n == 1 for n in ran.values()), ran
    expected = {
        run_id: {"first", "gate", "last"},
        by_stream: {"first", "gate", "last"},
        raced: {"first", "gate", "last"},
        canceled: {"first"},
        **{r: {"approve"} for r in resumed_ids},
        evented: {"first", "gate", "on-go"},
        watched_js["runId"]: {"first", "gate", "last"},
        report["canceled"]["runId"]: {"first"},
        report["evented"]["runId"]: {"first", "gate", "on-go"},
        report["resumed"]["runId"]: {"approve"},
        streamed_js["runId"]: {"first", "gate", "last"},
    }
    assert {r: {s for (rr, s) in ran if rr == r} for r in expected} == expected


MASTRA_CASES = ("watched", "canceled", "evented", "resumed", "streamed")
"""The cases of ``mastra_cluster.mjs``; each gets its (creator, starter, third) instances."""


def mastra_client(urls: list[str], plan: dict[str, list[int]], marks: Path) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None or not (CLIENT_DIR / "node_modules" / "@mastra" / "client-js").is_dir():
        if os.environ.get("CI"):
            pytest.fail("node and tests/server/mastra_client/node_modules are needed")
        pytest.skip("node and tests/server/mastra_client/node_modules are needed")
    report = marks / "mastra.json"
    env = {**os.environ, "CLIENT_DIR": str(CLIENT_DIR), "URLS": json.dumps(urls),
           "PLAN": json.dumps(plan), "MARKS": str(marks), "REPORT": str(report)}  # fmt: skip
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
    doomed, survivor, third = cluster
    run_ids = [await created_on(third.url, "gated") for _ in range(3)]
    for run_id in run_ids:  # created through one instance, started on the one to be killed
        await start_on(doomed.url, "gated", run_id)
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
