"""Claiming work: with ``--max-runs``, a start that its instance has no room for is queued in
PostgreSQL and started by an instance with room (``SKIP LOCKED``), or by the first one to get
room; every run starts once."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import httpx
import pytest

from stepstream.storage.postgres import PostgresStorage

from .conftest import Instance, done

LIMIT = 60.0


async def until_queued(db: str, run_id: str) -> None:
    storage = PostgresStorage(db)
    try:
        deadline = time.monotonic() + LIMIT
        # Another process queues it: nothing here can be told; a condition with a deadline.
        while not await storage.is_queued(run_id):
            assert time.monotonic() < deadline, f"run {run_id} was never queued"
            await asyncio.sleep(0.02)
    finally:
        await storage.close()


async def in_gate(
    client: httpx.AsyncClient, url: str, run_id: str, *, to_the_end: bool = False
) -> None:
    """Wait (over SSE) until ``run_id`` has finished its ``first`` step (or its ``finish``)."""
    async with client.stream("GET", f"{url}/api/workflows/gated/runs/{run_id}/events") as sse:
        async for line in sse.aiter_lines():
            if to_the_end and line == "event: finish":
                return
            if not to_the_end and '"id": "first", "status": "success"' in line:
                return
    raise AssertionError(f"the events of run {run_id} ended early")


@pytest.mark.asyncio
async def test_a_full_instance_queues_starts_for_others_and_takes_them_when_it_has_room(
    db: str, tmp_path: Path
) -> None:
    a, b = Instance(db, tmp_path, "--max-runs", "1"), Instance(db, tmp_path, "--max-runs", "1")
    try:
        a.wait_ready()
        b.wait_ready()
        api = f"{a.url}/api/workflows/gated"
        async with httpx.AsyncClient(timeout=LIMIT) as client:
            r1, r2, r3 = (str(uuid.uuid4()) for _ in range(3))
            for run_id in (r1, r2):  # the first fills a; the second goes to b, which has room
                assert (await client.post(f"{api}/create-run?runId={run_id}")).status_code == 200
                started = await client.post(f"{api}/start?runId={run_id}", json={"inputData": {}})
                assert started.status_code == 200, started.text
                await asyncio.wait_for(in_gate(client, a.url, run_id), LIMIT)
            # Both are full: the third waits in the queue until a has room again.
            third = asyncio.ensure_future(
                client.post(f"{api}/start-async?runId={r3}", json={"inputData": {}})
            )
            await until_queued(db, r3)
            assert not [r for r, _, _ in done(tmp_path) if r == r3]  # not started anywhere
            (tmp_path / f"go-{r1}").touch()
            (tmp_path / f"go-{r3}").touch()
            answer = await asyncio.wait_for(third, LIMIT)
            assert answer.status_code == 200, answer.text
            assert answer.json()["status"] == "success"
            (tmp_path / f"go-{r2}").touch()
            await asyncio.wait_for(in_gate(client, b.url, r2, to_the_end=True), LIMIT)
    finally:
        a.stop()
        b.stop()
    ran = done(tmp_path)
    pids = {r: {pid for rr, _, pid in ran if rr == r} for r in (r1, r2, r3)}
    assert pids == {r1: {a.proc.pid}, r2: {b.proc.pid}, r3: {a.proc.pid}}, ran
    for run_id in (r1, r2, r3):
        assert [s for r, s, _ in ran if r == run_id] == ["first", "gate", "last"]
    order = [(r, s) for r, s, _ in ran]
    assert order.index((r3, "first")) > order.index((r1, "last"))  # a took it once it had room
