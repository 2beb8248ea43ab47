"""A run that suspends on one ``stepstream serve`` instance and is resumed through another:
a client following it through the first (the SSE events route, which goes on through
suspensions) sees the other instance's events live, then the first's again when it executes
the run once more, with no gap and no duplicate, to the end."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from stepstream.client import AsyncClient
from stepstream.events import Event

from ..serving import ServeProcess
from .conftest import LEASE, done
from .test_cluster import LIMIT, same_as_log, stored_log


@pytest.fixture
def pair(db: str, tmp_path: Path) -> Iterator[tuple[ServeProcess, ServeProcess]]:
    """Two instances serving ``tests.cluster.suspending`` on one database."""
    a, b = (
        ServeProcess("tests.cluster.suspending", db, tmp_path, "--lease", str(LEASE))
        for _ in range(2)
    )
    try:
        a.wait_ready(60)
        b.wait_ready(60)
        yield a, b
    finally:
        a.stop(within=60)
        b.stop(within=60)


async def follow(url: str, run_id: str, seen: list[Event]) -> None:
    async with AsyncClient(url) as client:
        async for event in client.workflow("twice").events(run_id):
            seen.append(event)


async def until(seen: list[Event], kind: str, count: int) -> None:
    """Wait (polling a list filled by another task, with the test's deadline) until ``seen``
    holds ``count`` events of type ``kind``."""
    while sum(e.type == kind for e in seen) < count:  # noqa: ASYNC110 (filled by a task)
        await asyncio.sleep(0.01)


@pytest.mark.asyncio
async def test_a_follower_through_one_instance_sees_the_run_resumed_through_another(
    pair: tuple[ServeProcess, ServeProcess], db: str, tmp_path: Path
) -> None:
    a, b = pair
    async with AsyncClient(a.url) as client:
        first = await client.workflow("twice").start_async({})
    assert first.status == "suspended"
    seen: list[Event] = []
    follower = asyncio.ensure_future(follow(a.url, first.run_id, seen))
    await asyncio.wait_for(until(seen, "step-suspended", 1), LIMIT)  # following through a
    async with AsyncClient(b.url) as client:  # b executes the run on: a's hub hears nothing
        second = await client.workflow("twice").resume_async(first.run_id, "ask-1", 1)
    assert second.status == "suspended"
    await asyncio.wait_for(until(seen, "step-suspended", 2), LIMIT)
    async with AsyncClient(a.url) as client:  # and a executes it again, to its end
        last = await client.workflow("twice").resume_async(first.run_id, "ask-2", 2)
    assert last.status == "success" and last.result == 2
    await asyncio.wait_for(follower, LIMIT)
    same_as_log(seen, await stored_log(db, first.run_id))
    ran = [(s, pid) for r, s, pid in done(tmp_path) if r == first.run_id]
    assert ran == [("ask-1", b.proc.pid), ("ask-2", a.proc.pid)]
