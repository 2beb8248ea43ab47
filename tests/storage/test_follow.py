"""Following a run's log across storage instances (as across processes), and control messages
to a run's owner on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg
import pytest
import pytest_asyncio

from stepstream import StepContext, Workflow, get_plugin_manager, step
from stepstream.errors import StorageError
from stepstream.events import Event
from stepstream.hub import Subscription
from stepstream.storage import Storage, StoredEvent
from stepstream.storage._follow import PAGE
from stepstream.storage.postgres import PostgresStorage

from .test_storage import checkpoint, claim, events

LIMIT = 20.0  # seconds before a test that should have seen something fails (not a sync)


@pytest_asyncio.fixture
async def other(storage_opener: Callable[[], Storage]) -> AsyncIterator[Storage]:
    """A second backend instance on the same store: another process, as far as it knows."""
    backend = storage_opener()
    try:
        yield backend
    finally:
        await backend.close()


async def take(follower: AsyncIterator[StoredEvent], n: int) -> list[int]:
    out = []
    for _ in range(n):
        out.append((await asyncio.wait_for(anext(follower), LIMIT)).seq)
    return out


@pytest.mark.asyncio
async def test_a_follower_elsewhere_gets_stored_then_live_events_and_ends_with_the_run(
    storage: Storage, other: Storage
) -> None:
    await storage.claim(claim())
    await storage.save_checkpoint(checkpoint(last_seq=2, events=events(0, 1, 2)))
    follower = other.follow("run-1", after_seq=0)
    assert await take(follower, 2) == [1, 2]  # stored
    for seq in range(3, 8):  # each committed only once the one before was seen: live
        await storage.save_checkpoint(checkpoint(last_seq=seq, events=events(seq)))
        assert await take(follower, 1) == [seq]
    await storage.save_checkpoint(
        checkpoint(status="success", last_seq=8, events=events(8), release=True)
    )
    assert await take(follower, 1) == [8]
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(follower), LIMIT)


@pytest.mark.asyncio
async def test_a_follower_pages_a_long_log_and_stops_at_a_suspension(
    storage: Storage, other: Storage
) -> None:
    await storage.claim(claim())
    n = PAGE * 2 + 7
    await storage.save_checkpoint(checkpoint(last_seq=n - 1, events=events(*range(n))))
    await storage.save_checkpoint(checkpoint(status="suspended", last_seq=n - 1, release=True))
    seen = [e.seq async for e in other.follow("run-1")]
    assert seen == list(range(n))
    assert [e.seq async for e in other.follow("run-1", after_seq=n - 1)] == []


@pytest.mark.asyncio
async def test_following_an_unknown_run_ends_at_once(storage: Storage) -> None:
    assert [e async for e in storage.follow("nobody")] == []


@pytest.mark.asyncio
async def test_many_followers_of_one_run_each_get_every_event(
    storage: Storage, other: Storage
) -> None:
    await storage.claim(claim())
    followers = [other.follow("run-1") for _ in range(5)] + [storage.follow("run-1", 3)]
    seen = [asyncio.ensure_future(_all(f)) for f in followers]
    for seq in range(10):
        await storage.save_checkpoint(checkpoint(last_seq=seq, events=events(seq)))
    await storage.save_checkpoint(checkpoint(status="failed", last_seq=9, release=True))
    done = await asyncio.wait_for(asyncio.gather(*seen), LIMIT)
    assert done == [list(range(10))] * 5 + [list(range(4, 10))]


async def _all(follower: AsyncIterator[StoredEvent]) -> list[int]:
    return [e.seq async for e in follower]


# -- PostgreSQL: notifications are hints, the log is the truth ---------------------------------


@pytest_asyncio.fixture
async def pair(postgres_dsn: str) -> AsyncIterator[tuple[PostgresStorage, PostgresStorage]]:
    schema = f"follow_{uuid.uuid4().hex[:12]}"
    a = PostgresStorage(postgres_dsn, schema=schema)
    b = PostgresStorage(postgres_dsn, schema=schema)
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


@pytest.mark.asyncio
async def test_lost_notifications_only_delay_a_follower(
    pair: tuple[PostgresStorage, PostgresStorage], monkeypatch: pytest.MonkeyPatch
) -> None:
    writer, reader = pair
    reader.follow_recheck = 0.05
    heard: list[str] = []
    monkeypatch.setattr(reader, "_heard_commit", heard.append)  # every notification is lost
    reader._listener.channels[reader.channels["events"]] = heard.append
    await writer.claim(claim())
    follower = reader.follow("run-1")
    for seq in range(4):
        await writer.save_checkpoint(checkpoint(last_seq=seq, events=events(seq)))
        assert await take(follower, 1) == [seq]
    assert heard, "the notifications were sent (and dropped here)"


@pytest.mark.asyncio
async def test_a_follower_goes_on_after_its_listening_connection_is_killed(
    pair: tuple[PostgresStorage, PostgresStorage], postgres_dsn: str
) -> None:
    writer, reader = pair
    await writer.claim(claim())
    follower = reader.follow("run-1")
    await writer.save_checkpoint(checkpoint(last_seq=0, events=events(0)))
    assert await take(follower, 1) == [0]
    assert await reader._listener.ready()
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE query LIKE 'LISTEN %%' AND query LIKE %s AND pid <> pg_backend_pid()",
            (f"%{reader.schema}%",),
        ).fetchall()
    assert killed
    for seq in (1, 2):
        await writer.save_checkpoint(checkpoint(last_seq=seq, events=events(seq)))
        assert await take(follower, 1) == [seq]


@pytest.mark.asyncio
async def test_a_commit_notifies_a_small_payload(
    pair: tuple[PostgresStorage, PostgresStorage], postgres_dsn: str
) -> None:
    writer, _ = pair
    await writer.claim(claim())
    conn = await psycopg.AsyncConnection.connect(postgres_dsn, autocommit=True)
    async with conn:
        await conn.execute(f'LISTEN "{writer.channels["events"]}"')
        await writer.save_checkpoint(checkpoint(last_seq=1, events=events(0, 1)))
        note = await asyncio.wait_for(anext(aiter(conn.notifies())), LIMIT)
    assert note.payload == "running 1 run-1"


# -- control messages ------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_control_message_reaches_the_owner_and_its_answer_the_sender(
    pair: tuple[PostgresStorage, PostgresStorage],
) -> None:
    owner, sender = pair
    got: list[tuple[str, str, dict[str, Any]]] = []

    async def handler(run_id: str, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        got.append((run_id, kind, body))
        return {"ok": body["n"] + 1}

    owner.on_control(handler)
    await owner.claim(claim())
    answer = await sender.send_control("run-1", "cancel", {"n": 41}, within=LIMIT)
    assert answer == {"ok": 42}
    assert got == [("run-1", "cancel", {"n": 41})]


@pytest.mark.asyncio
async def test_a_control_message_to_a_run_executing_nowhere_is_withdrawn(
    pair: tuple[PostgresStorage, PostgresStorage],
) -> None:
    owner, sender = pair
    sender.follow_recheck = 0.05
    await owner.claim(claim())
    await owner.save_checkpoint(checkpoint(status="suspended", last_seq=-1, release=True))
    assert await sender.send_control("run-1", "cancel", {}, within=LIMIT) is None
    pool = await sender._get_pool()
    async with pool.connection() as conn:
        cur = await conn.execute(
            psycopg.sql.SQL("SELECT count(*) FROM {}").format(sender._t["control"])
        )
        assert await cur.fetchone() == (0,)  # nothing left behind


@pytest.mark.asyncio
async def test_an_owner_that_does_not_answer_makes_a_clear_error(
    pair: tuple[PostgresStorage, PostgresStorage],
) -> None:
    owner, sender = pair  # the owner has no handler: it never answers
    sender.follow_recheck = 0.05
    await owner.claim(claim())
    with pytest.raises(StorageError, match=r"did not answer 'cancel' within 0\.3 s"):
        await sender.send_control("run-1", "cancel", {}, within=0.3)


@pytest.mark.asyncio
async def test_a_failing_handler_answers_with_its_error(
    pair: tuple[PostgresStorage, PostgresStorage],
) -> None:
    owner, sender = pair

    async def handler(run_id: str, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        raise ValueError(json.dumps(body))

    owner.on_control(handler)
    await owner.claim(claim())
    answer = await sender.send_control("run-1", "resume", {"x": 1}, within=LIMIT)
    assert answer == {"error": 'ValueError: {"x": 1}', "status": 500}


@pytest.mark.asyncio
async def test_a_follower_may_await_a_run_s_creation_and_follow_it_through_a_suspension(
    storage: Storage, other: Storage
) -> None:
    follower = other.follow("run-1", await_creation=True, through_suspension=True)
    first = asyncio.ensure_future(anext(follower))
    await storage.claim(claim())  # created after the follower began to wait
    await storage.save_checkpoint(checkpoint(last_seq=0, events=events(0)))
    assert (await asyncio.wait_for(first, LIMIT)).seq == 0
    await storage.save_checkpoint(
        checkpoint(status="suspended", last_seq=1, events=events(1), release=True)
    )
    assert await take(follower, 1) == [1]
    pending = asyncio.ensure_future(anext(follower))  # waits on: the run is only suspended
    await storage.claim(claim(create=None, expect=("suspended",)))
    await storage.save_checkpoint(
        checkpoint(status="success", last_seq=2, events=events(2), release=True)
    )
    assert (await asyncio.wait_for(pending, LIMIT)).seq == 2
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(follower), LIMIT)


# -- a run's hub follows the log while another instance executes the run ----------------------


@step(id="ask-1")
async def ask_1(ctx: StepContext[Any]) -> Any:
    if ctx.resume_data is None:
        ctx.suspend({"ask": 1})
    return ctx.resume_data


@step(id="ask-2")
async def ask_2(ctx: StepContext[Any]) -> Any:
    if ctx.resume_data is None:
        ctx.suspend({"ask": 2})
    return ctx.resume_data


twice = Workflow(id="twice").then(ask_1).then(ask_2).commit()


@pytest.mark.asyncio
async def test_a_subscriber_through_suspensions_sees_the_run_executed_elsewhere_then_here(
    storage: Storage, other: Storage
) -> None:
    pm = get_plugin_manager(load_entrypoints=False)
    here = await twice.create_run(storage=storage, plugin_manager=pm)
    assert (await here.start({})).status == "suspended"
    late = here.subscribe(here.last_seq - 2)  # behind: reads the end of this execution first
    watching = [asyncio.ensure_future(_events(s)) for s in (here.subscribe(), late)]
    there = await twice.load_run(here.run_id, storage=other, plugin_manager=pm)
    assert (await there.resume(step="ask-1", resume_data=1)).status == "suspended"
    again = await twice.load_run(here.run_id, storage=storage, plugin_manager=pm)
    assert (await again.resume(step="ask-2", resume_data=2)).status == "success"
    seen, tail = await asyncio.wait_for(asyncio.gather(*watching), LIMIT)
    log = await storage.read_events(here.run_id)
    assert [e.type for e in log].count("step-suspended") == 2
    assert [(e.seq, e.to_wire()) for e in seen] == [(e.seq, e.wire) for e in log]
    assert tail == seen[len(seen) - len(tail) :] and tail[0].seq == here.last_seq - 1


@pytest.mark.asyncio
async def test_a_subscriber_following_the_log_leaves_without_a_trace(
    storage: Storage, other: Storage
) -> None:
    pm = get_plugin_manager(load_entrypoints=False)
    here = await twice.create_run(storage=storage, plugin_manager=pm)
    await here.start({})
    subscription = here.subscribe(here.last_seq)
    waiting = asyncio.ensure_future(anext(subscription))
    there = await twice.load_run(here.run_id, storage=other, plugin_manager=pm)
    resumed = asyncio.ensure_future(there.resume(step="ask-1", resume_data=1))
    first = await asyncio.wait_for(waiting, LIMIT)
    assert first.seq == here.last_seq + 1  # the other instance's first event
    await subscription.aclose()
    assert subscription.end_reason == "closed"
    assert not storage._followers  # its follower of the log is gone
    assert (await asyncio.wait_for(resumed, LIMIT)).status == "suspended"


async def _following(storage: Storage) -> None:
    """Return once some subscriber follows the storage's log (polled: nothing announces it)."""
    while not storage._followers:  # noqa: ASYNC110
        await asyncio.sleep(0.001)


async def _events(subscription: Subscription) -> list[Event]:
    return [e async for e in subscription]


@pytest.mark.asyncio
async def test_a_subscriber_following_the_log_hands_over_to_the_hub_when_the_run_resumes_here(
    storage: Storage,
) -> None:
    pm = get_plugin_manager(load_entrypoints=False)
    here = await twice.create_run(storage=storage, plugin_manager=pm)
    await here.start({})
    subscription = here.subscribe()
    watching = asyncio.ensure_future(_events(subscription))
    for ask, value in (("ask-1", 1), ("ask-2", 2)):  # this very copy executes it again
        await asyncio.wait_for(_following(storage), LIMIT)  # at the suspension: on the log
        await here.resume(step=ask, resume_data=value)
    seen = await asyncio.wait_for(watching, LIMIT)
    log = await storage.read_events(here.run_id)
    assert [(e.seq, e.to_wire()) for e in seen] == [(e.seq, e.wire) for e in log]
    assert subscription.end_reason == "finished" and not storage._followers


@pytest.mark.asyncio
async def test_the_primary_stream_through_suspensions_sees_the_run_executed_elsewhere(
    storage: Storage, other: Storage
) -> None:
    # `async for event in run.stream()` (through suspensions by default) on a durable run that
    # another process resumes: the stream gets that process's events, then the end, here.
    pm = get_plugin_manager(load_entrypoints=False)
    here = await twice.create_run(storage=storage, plugin_manager=pm)
    stream = here.stream({})
    assert stream.primary and not stream.close_on_suspend
    streamed = asyncio.ensure_future(_list(stream))
    assert (await stream.get_workflow_state()).status == "suspended"
    there = await twice.load_run(here.run_id, storage=other, plugin_manager=pm)
    assert (await there.resume(step="ask-1", resume_data=1)).status == "suspended"
    assert (await there.resume(step="ask-2", resume_data=2)).status == "success"
    seen = await asyncio.wait_for(streamed, LIMIT)
    log = await storage.read_events(here.run_id)
    assert [e.type for e in log].count("step-suspended") == 2 and log[-1].type == "finish"
    assert [(e.seq, e.to_wire()) for e in seen] == [(e.seq, e.wire) for e in log]
    assert stream.ended and not storage._followers


@pytest.mark.asyncio
async def test_the_primary_stream_goes_on_when_the_same_run_resumes_here(storage: Storage) -> None:
    # Its channel ended at the suspension: the resumed execution reaches it through the hub.
    pm = get_plugin_manager(load_entrypoints=False)
    here = await twice.create_run(storage=storage, plugin_manager=pm)
    stream = here.stream({})
    streamed = asyncio.ensure_future(_list(stream))
    assert (await stream.get_workflow_state()).status == "suspended"
    assert (await here.resume(step="ask-1", resume_data=1)).status == "suspended"
    assert (await here.resume(step="ask-2", resume_data=2)).status == "success"
    seen = await asyncio.wait_for(streamed, LIMIT)
    log = await storage.read_events(here.run_id)
    assert [(e.seq, e.to_wire()) for e in seen] == [(e.seq, e.wire) for e in log]


async def _list(stream: Any) -> list[Event]:
    return [event async for event in stream]


@pytest.mark.asyncio
async def test_subscribers_of_a_created_run_see_it_executed_elsewhere(
    storage: Storage, other: Storage
) -> None:
    # Created here (stored pending), started by another process: this copy's subscribers
    # follow the log, one to the suspension, one through it to the end.
    pm = get_plugin_manager(load_entrypoints=False)
    here = await twice.create_run(storage=storage, plugin_manager=pm)
    through, until = here.subscribe(), here.subscribe(close_on_suspend=True)
    watching = [asyncio.ensure_future(_events(s)) for s in (through, until)]
    there = await twice.load_run(here.run_id, storage=other, plugin_manager=pm)
    assert (await there.start({})).status == "suspended"
    to_suspension = await asyncio.wait_for(watching[1], LIMIT)
    assert (await there.resume(step="ask-1", resume_data=1)).status == "suspended"
    assert (await there.resume(step="ask-2", resume_data=2)).status == "success"
    seen = await asyncio.wait_for(watching[0], LIMIT)
    log = await storage.read_events(here.run_id)
    assert [(e.seq, e.to_wire()) for e in seen] == [(e.seq, e.wire) for e in log]
    first = [e.seq for e in log].index(next(e.seq for e in log if e.type == "step-suspended"))
    assert [e.seq for e in to_suspension] == [e.seq for e in log[: first + 1]]
    assert (through.end_reason, until.end_reason) == ("finished", "suspended")
    assert not storage._followers
