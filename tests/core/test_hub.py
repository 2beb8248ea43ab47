"""The run's event hub: any number of subscribers, from any seq, none of them slowing the run."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from stepstream import (
    Event,
    PluginManager,
    StepContext,
    StorageError,
    StreamError,
    Subscription,
    Workflow,
    step,
)
from stepstream.storage.sqlite import SQLiteStorage
from stepstream.testing import Recorder


def _gated(writes: int) -> tuple[Workflow, asyncio.Event]:
    """A workflow whose `talk` step writes ``writes`` outputs, then waits for the gate;
    ``gate.reached`` is set once it waits there."""
    gate = asyncio.Event()
    gate.reached = asyncio.Event()  # type: ignore[attr-defined]

    @step(id="talk")
    async def talk(ctx: StepContext[Any]) -> Any:
        for i in range(writes):
            await ctx.write({"i": i})
        gate.reached.set()  # type: ignore[attr-defined]
        await gate.wait()
        return {"said": writes}

    @step(id="after")
    async def after(ctx: StepContext[Any]) -> Any:
        return {"done": True}

    return Workflow(id="gated").then(talk).then(after).commit(), gate


@step(id="approve")
async def approve(ctx: StepContext[Any]) -> Any:
    if ctx.resume_data is None:
        await ctx.suspend({"ask": "ok?"})
    return {"approved": ctx.resume_data}


@step(id="echo")
async def echo(ctx: StepContext[Any]) -> Any:
    await ctx.write({"echo": ctx.input_data})
    return ctx.input_data


async def _drain(subscription: Subscription) -> list[Event]:
    return [event async for event in subscription]


def _seqs(events: list[Event]) -> list[int]:
    return [e.seq for e in events]


@pytest.mark.asyncio
async def test_many_subscribers_at_any_seq_get_the_log_from_there(
    pm: PluginManager, recorder: Recorder
) -> None:
    wf, gate = _gated(20)
    run = await wf.create_run(plugin_manager=pm)
    early = [run.subscribe(), run.subscribe(after_seq=-1), run.subscribe(after_seq=3)]
    readers = [asyncio.create_task(_drain(s)) for s in early]
    task = asyncio.create_task(run.start({}))
    await gate.reached.wait()  # type: ignore[attr-defined]
    late = [run.subscribe(after_seq=n) for n in (None, 0, 7, 12)]
    readers += [asyncio.create_task(_drain(s)) for s in late]
    gate.set()
    assert (await task).status == "success"
    log = _seqs(recorder.events)
    assert log == list(range(len(log)))
    got = await asyncio.gather(*readers)
    starts = [-1, -1, 3, -1, 0, 7, 12]
    for after, events in zip(starts, got, strict=True):
        assert _seqs(events) == log[after + 1 :]
        assert events == recorder.events[after + 1 :]
    assert all(s.end_reason == "finished" for s in [*early, *late])


@pytest.mark.asyncio
async def test_a_subscriber_that_leaves_mid_run_leaves_the_run_alone(
    pm: PluginManager, recorder: Recorder
) -> None:
    wf, gate = _gated(5)
    run = await wf.create_run(plugin_manager=pm)
    leaving, staying = run.subscribe(), run.subscribe()
    task = asyncio.create_task(run.start({}))
    first: list[Event] = []
    async with leaving:
        async for event in leaving:
            first.append(event)
            if len(first) == 3:
                break
    assert leaving.end_reason == "closed"
    gate.set()
    assert (await task).status == "success"
    assert [e.type for e in first] == ["start", "step-start", "step-output"]
    assert await _drain(staying) == recorder.events
    assert await _drain(leaving) == []  # a closed subscription stays closed


@pytest.mark.asyncio
async def test_a_subscriber_that_never_reads_does_not_hold_the_run_in_memory(
    pm: PluginManager, recorder: Recorder
) -> None:
    # Far more events than the stream's buffer: the run only finishes if nobody holds it.
    wf, gate = _gated(2_000)
    gate.set()
    run = await wf.create_run(plugin_manager=pm)
    idle = run.subscribe(buffer=16)
    stream = run.stream({}, buffer_size=4)
    streamed = [e async for e in stream]
    assert (await stream.get_workflow_state()).status == "success"
    assert streamed == recorder.events and len(streamed) > 2_000
    # In memory only: it fell more than its buffer behind, and it says so.
    assert await _drain(idle) == []
    assert idle.end_reason == "lagged"


@pytest.mark.asyncio
async def test_a_durable_subscriber_that_never_read_reads_everything_from_storage(
    pm: PluginManager, recorder: Recorder, tmp_path: Path
) -> None:
    store = SQLiteStorage(tmp_path / "runs.db")
    wf, gate = _gated(600)
    gate.set()
    run = await wf.create_run(plugin_manager=pm, storage=store)
    run._hub.window = 50  # the window loses most events: the subscriber must page storage
    idle = run.subscribe(buffer=1)
    assert (await run.start({})).status == "success"
    events = await _drain(idle)
    stored = await store.read_events(run.run_id)
    assert _seqs(events) == [e.seq for e in stored] == _seqs(recorder.events)
    assert [e.to_wire() for e in events] == [e.wire for e in stored]
    assert idle.end_reason == "finished"
    await store.close()


@pytest.mark.asyncio
async def test_a_durable_subscriber_is_shown_committed_events_only(
    pm: PluginManager, tmp_path: Path
) -> None:
    store = SQLiteStorage(tmp_path / "runs.db")
    wf, gate = _gated(30)
    gate.set()
    run = await wf.create_run(plugin_manager=pm, storage=store)
    persist = run._dispatcher.persist
    assert persist is not None
    subscription = run.subscribe()
    task = asyncio.create_task(run.start({}))
    shown = []
    async for event in subscription:
        shown.append((event.seq, persist.committed_seq))
    await task
    assert shown and all(seq <= committed for seq, committed in shown)
    await store.close()


@pytest.mark.asyncio
async def test_subscribers_follow_a_run_across_suspend_and_resume(
    pm: PluginManager, recorder: Recorder
) -> None:
    run = await Workflow(id="ask").then(approve).then(echo).commit().create_run(plugin_manager=pm)
    through, until_suspended = run.subscribe(), run.subscribe(close_on_suspend=True)
    reader = asyncio.create_task(_drain(through))
    assert (await run.start({})).status == "suspended"
    suspended_at = recorder.events[-1].seq
    assert _seqs(await _drain(until_suspended)) == list(range(suspended_at + 1))
    assert until_suspended.end_reason == "suspended"
    joined_while_suspended = run.subscribe(after_seq=suspended_at)
    late_reader = asyncio.create_task(_drain(joined_while_suspended))
    assert (await run.resume(resume_data="yes")).status == "success"
    assert await reader == recorder.events
    assert await late_reader == recorder.events[suspended_at + 1 :]
    assert through.end_reason == joined_while_suspended.end_reason == "finished"


@pytest.mark.asyncio
async def test_subscribers_see_the_events_of_nested_workflows(
    pm: PluginManager, recorder: Recorder
) -> None:
    inner = Workflow(id="inner").then(echo).commit()
    run = await Workflow(id="outer").then(inner).then(echo).commit().create_run(plugin_manager=pm)
    subscription = run.subscribe()
    reader = asyncio.create_task(_drain(subscription))
    assert (await run.start({"x": 1})).status == "success"
    events = await reader
    assert events == recorder.events
    assert "inner.echo" in {getattr(e, "step_id", None) for e in events}


@pytest.mark.asyncio
async def test_a_second_stream_is_a_subscriber_not_an_error(
    pm: PluginManager, recorder: Recorder
) -> None:
    wf, gate = _gated(3)
    run = await wf.create_run(plugin_manager=pm)
    primary = run.stream({}, after_seq=-1)
    second = run.stream(after_seq=-1)
    assert primary.primary and not second.primary
    readers = [asyncio.create_task(_list(s)) for s in (primary, second)]
    await gate.reached.wait()  # type: ignore[attr-defined]
    third = run.stream(after_seq=-1)
    await third.aclose()  # leaving a stream that is not the primary leaves the run alone
    assert run.status == "running"
    gate.set()
    first, other = await asyncio.gather(*readers)
    assert first == other == recorder.events
    assert (await primary.get_workflow_state()).status == "success"


async def _list(stream: Any) -> list[Event]:
    return [event async for event in stream]


@pytest.mark.asyncio
async def test_a_lagging_in_memory_stream_raises_a_clear_error(pm: PluginManager) -> None:
    wf, gate = _gated(50)
    gate.set()
    run = await wf.create_run(plugin_manager=pm)
    run._hub.window = 10
    assert (await run.start({})).status == "success"
    with pytest.raises(StreamError, match="fell behind"):
        await _list(run.stream(after_seq=0))
    tail = await _list(run.stream(after_seq=run._hub.head - 3))  # still in memory
    assert [e.type for e in tail][-1] == "finish" and len(tail) == 3


@pytest.mark.asyncio
async def test_a_window_shrunk_after_the_run_keeps_its_latest_events(pm: PluginManager) -> None:
    # The window is a list until it is full, then a bounded deque: both must keep the latest.
    wf, gate = _gated(20)
    gate.set()
    run = await wf.create_run(plugin_manager=pm)
    assert (await run.start({})).status == "success"
    head = run._hub.head
    assert _seqs(await _list(run.stream(after_seq=-1))) == list(range(head + 1))
    run._hub.window = 5
    assert run._hub.window == 5 and run._hub.oldest() == head - 4
    assert _seqs(await _list(run.stream(after_seq=head - 5))) == list(range(head - 4, head + 1))
    with pytest.raises(StreamError, match="fell behind"):
        await _list(run.stream(after_seq=head - 6))


@pytest.mark.asyncio
async def test_subscribe_refuses_bad_arguments(pm: PluginManager) -> None:
    run = await Workflow(id="wf").then(echo).commit().create_run(plugin_manager=pm)
    with pytest.raises(ValueError, match="buffer must be at least 1"):
        run.subscribe(buffer=0)
    with pytest.raises(ValueError, match="after_seq must be -1 or more"):
        run.subscribe(after_seq=-2)
    assert (await run.start({})).status == "success"  # nothing was lost


@pytest.mark.asyncio
async def test_a_failing_watcher_is_reported_and_the_run_goes_on(pm: PluginManager) -> None:
    run = await Workflow(id="wf").then(echo).commit().create_run(plugin_manager=pm)

    def broken(record: Any) -> None:
        raise RuntimeError("watcher broke")

    run.watch(broken, "watch-v2")
    result = await run.start({"x": 1})
    assert result.status == "success" and result.result == {"x": 1}
    assert result.plugin_errors and "watcher broke" in result.plugin_errors[0].error


@pytest.mark.asyncio
async def test_a_loaded_runs_subscriber_reads_the_log_then_the_resumed_events(
    pm: PluginManager, tmp_path: Path
) -> None:
    store = SQLiteStorage(tmp_path / "runs.db")
    wf = Workflow(id="ask").then(approve).then(echo).commit()
    first = await wf.create_run(plugin_manager=pm, storage=store)
    assert (await first.start({})).status == "suspended"
    loaded = (
        await Workflow(id="ask")
        .then(approve)
        .then(echo)
        .commit()
        .load_run(first.run_id, storage=store, plugin_manager=pm)
    )
    from_start, from_now = loaded.subscribe(), loaded.subscribe(loaded.last_seq)
    readers = [asyncio.create_task(_drain(s)) for s in (from_start, from_now)]
    assert (await loaded.resume(resume_data="yes")).status == "success"
    everything, resumed = await asyncio.gather(*readers)
    stored = await store.read_events(first.run_id)
    assert [e.to_wire() for e in everything] == [e.wire for e in stored]
    assert _seqs(resumed) == [e.seq for e in stored if e.seq > first.last_seq]
    assert resumed[0].type == "step-start" and resumed[-1].type == "finish"
    await store.close()


@pytest.mark.asyncio
async def test_an_ended_durable_run_lets_its_window_go_once_its_subscribers_are_done(
    pm: PluginManager, tmp_path: Path
) -> None:
    store = SQLiteStorage(tmp_path / "runs.db")
    run = await Workflow(id="wf").then(echo).commit().create_run(plugin_manager=pm, storage=store)
    behind = run.subscribe()
    assert (await run.start({"x": 1})).status == "success"
    assert run._hub.held(-1) is not None  # kept for the subscriber still reading
    events = await _drain(behind)
    assert run._hub.held(-1) is None  # the log holds it all: nothing is kept in memory
    late = await _drain(run.subscribe())  # read from the log
    assert late == events and events[-1].type == "finish"
    await store.close()


def test_a_subscriber_left_on_a_closed_loop_does_not_break_the_next_execution(
    pm: PluginManager,
) -> None:
    run = Workflow(id="ask").then(approve).then(echo).commit()
    live = asyncio.run(run.create_run(plugin_manager=pm))

    async def wait_on_a_subscriber() -> None:
        assert (await live.start({})).status == "suspended"
        waiting = asyncio.ensure_future(anext(live.subscribe(live.last_seq)))
        await asyncio.sleep(0)  # one turn of the loop: the read starts, and waits in the hub
        assert not waiting.done() and live._hub._changed is not None

    with asyncio.Runner() as runner:  # the loop, with the subscriber still waiting, closes
        runner.run(wait_on_a_subscriber())

    async def follow_the_resumption() -> list[Event]:
        subscription = live.subscribe(live.last_seq)
        reader = asyncio.create_task(_drain(subscription))
        assert (await live.resume(resume_data="yes")).status == "success"
        return await reader

    resumed = asyncio.run(follow_the_resumption())
    assert resumed[0].type == "step-start" and resumed[-1].type == "finish"


class _WatchedStorage(SQLiteStorage):
    """An SQLite store that says when a subscriber starts following a run's log."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.following = asyncio.Event()

    def follow(self, *args: Any, **kwargs: Any) -> Any:
        self.following.set()
        return super().follow(*args, **kwargs)


async def _cancel_while_following(store: _WatchedStorage, subscription: Subscription) -> None:
    waiting = asyncio.ensure_future(anext(subscription))
    await store.following.wait()  # the read of the log is under way: cancel in its midst
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting


@pytest.mark.asyncio
@pytest.mark.parametrize("where", ["the same run", "another copy of the run"])
async def test_a_subscriber_canceled_while_following_a_suspension_goes_on_with_no_gap(
    pm: PluginManager, tmp_path: Path, where: str
) -> None:
    # A consumer that waits with a timeout (asyncio.wait_for on anext) cancels the subscriber
    # mid-read and asks again: the next events still come, each once.
    store = _WatchedStorage(tmp_path / "runs.db")
    wf = Workflow(id="ask").then(approve).then(echo).commit()
    run = await wf.create_run(plugin_manager=pm, storage=store)
    subscription = run.subscribe()
    assert (await run.start({})).status == "suspended"
    seen = [await anext(subscription) for _ in range(run.last_seq + 1)]
    await _cancel_while_following(store, subscription)
    reader = asyncio.create_task(_drain(subscription))
    if where == "the same run":
        resumed = await run.resume(resume_data="yes")
    else:
        copy = await wf.load_run(run.run_id, storage=store, plugin_manager=pm)
        resumed = await copy.resume(resume_data="yes")
    assert resumed.status == "success"
    seen += await reader
    stored = await store.read_events(run.run_id)
    assert [e.to_wire() for e in seen] == [e.wire for e in stored]
    assert _seqs(seen) == list(range(len(stored))) and subscription.end_reason == "finished"
    await store.close()


@pytest.mark.asyncio
async def test_a_subscriber_following_a_suspension_gets_a_storage_error_when_storage_closes(
    pm: PluginManager, tmp_path: Path
) -> None:
    store = _WatchedStorage(tmp_path / "runs.db")
    run = (
        await Workflow(id="ask").then(approve).commit().create_run(plugin_manager=pm, storage=store)
    )
    assert (await run.start({})).status == "suspended"
    subscription = run.subscribe(run.last_seq)
    reader = asyncio.create_task(_drain(subscription))
    await store.following.wait()
    await store.close()
    with pytest.raises(StorageError):
        await reader


@pytest.mark.asyncio
@pytest.mark.parametrize("durable", [False, True], ids=["in memory", "following the log"])
async def test_a_subscription_closed_by_another_task_ends_its_waiting_reader_normally(
    pm: PluginManager, tmp_path: Path, durable: bool
) -> None:
    # The reader waits at a suspension (a durable run's: reading the log); another task
    # leaves the subscription. The reader's loop ends, neither canceled nor left waiting for
    # the run's next change.
    store = SQLiteStorage(tmp_path / "runs.db") if durable else None
    wf = Workflow(id="ask").then(approve).then(echo).commit()
    run = await wf.create_run(plugin_manager=pm, storage=store)
    assert (await run.start({})).status == "suspended"
    subscription = run.subscribe(run.last_seq)
    hub, waits = run._hub, asyncio.Event()
    changed = hub.changed

    def watched() -> asyncio.Future[None]:
        waits.set()  # asked while it waits: at the hub, or beside its read of the log
        return changed()

    hub.changed = watched  # type: ignore[method-assign]
    reader = asyncio.create_task(_drain(subscription))
    await waits.wait()
    await subscription.aclose()
    assert await reader == [] and not reader.cancelled()
    assert subscription.end_reason == "closed"
    assert (await run.resume(resume_data="yes")).status == "success"  # the run is unaffected
    if store is not None:
        await store.close()


@pytest.mark.asyncio
async def test_a_subscriber_of_a_durable_run_not_stored_yet_waits_for_its_start(
    pm: PluginManager, tmp_path: Path
) -> None:
    # A run made to be started at once (a server's start-async) is stored by its start's
    # claim: a subscriber that comes first must wait for that, not end on an unknown run.
    store = SQLiteStorage(tmp_path / "runs.db")
    try:
        wf = Workflow(id="wf").then(echo).commit()
        run = wf._unstored_run(None, plugin_manager=pm, storage=store)
        assert await store.load_run(run.run_id) is None
        early = asyncio.ensure_future(_drain(run.subscribe()))
        await asyncio.sleep(0)  # one turn of the loop: the subscriber reaches its wait first
        assert not early.done()
        assert (await run.start({"x": 1})).status == "success"
        events = await asyncio.wait_for(early, 20)
        log = await store.read_events(run.run_id)
        assert [e.seq for e in events] == [e.seq for e in log] and events[-1].type == "finish"
    finally:
        await store.close()
