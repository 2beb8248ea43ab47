"""The built-in ``stream`` plugin: its bounded channel, backpressure, blocking by name."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stepstream import (
    Event,
    PluginManager,
    StepContext,
    StreamError,
    Workflow,
    get_plugin_manager,
    hookimpl,
    step,
)
from stepstream.events import StartEvent, StepOutputEvent
from stepstream.plugins.stream import BoundedChannel, StreamPlugin
from stepstream.testing import Recorder

from ..conftest import assert_no_tasks_left


def _event(seq: int) -> StepOutputEvent:
    return StepOutputEvent(run_id="r", seq=seq, step_id="s", output=seq)


@pytest.mark.asyncio
async def test_channel_delivers_in_order_and_signals_full() -> None:
    channel = BoundedChannel(2)
    assert channel.put(_event(0)) is None
    waiter = channel.put(_event(1))
    assert waiter is not None and not waiter.done()
    assert (await channel.receive()).seq == 0
    assert waiter.done()  # room again: the producer may go on
    channel.end()
    assert (await channel.receive()).seq == 1
    with pytest.raises(StopAsyncIteration):
        await channel.receive()


@pytest.mark.asyncio
async def test_channel_that_stays_behind_keeps_order_and_its_bound() -> None:
    # The buffer is a list read from a head index, compacted once the consumer has read past
    # the bound without emptying it: order, length and backpressure must survive that.
    channel = BoundedChannel(2)
    waiters = [channel.put(_event(seq)) for seq in range(6)]
    assert waiters[0] is None and all(w is not None for w in waiters[1:]) and len(channel) == 6
    got = [(await channel.receive()).seq for _ in range(3)]  # reads past the bound: compacted
    assert got == [0, 1, 2] and len(channel) == 3
    assert channel.put(_event(6)) is not None  # still over its bound
    got += [(await channel.receive()).seq for _ in range(4)]
    assert len(channel) == 0 and all(w is not None and w.done() for w in waiters[1:])
    assert channel.put(_event(7)) is None  # under its bound again
    channel.end()
    got += [event.seq async for event in _drained(channel)]
    assert got == list(range(8)) and len(channel) == 0


async def _drained(channel: BoundedChannel) -> Any:
    while True:
        try:
            yield await channel.receive()
        except StopAsyncIteration:
            return


@pytest.mark.asyncio
async def test_channel_close_drops_buffer_and_releases_producer() -> None:
    released: list[bool] = []
    channel = BoundedChannel(1)
    channel.on_release(lambda: released.append(True))
    waiter = channel.put(_event(0))
    assert waiter is not None
    channel.close()
    assert waiter.done() and len(channel) == 0 and released == [True]
    assert channel.put(_event(1)) is None  # a closed channel keeps nothing
    with pytest.raises(StopAsyncIteration):
        await channel.receive()


@pytest.mark.asyncio
async def test_channel_ends_after_finish_event() -> None:
    channel = BoundedChannel(4)
    channel.put(StartEvent(run_id="r", seq=0))
    from stepstream.events import FinishEvent

    channel.put(FinishEvent(run_id="r", seq=1))
    assert [(await channel.receive()).type, (await channel.receive()).type] == ["start", "finish"]
    with pytest.raises(StopAsyncIteration):
        await channel.receive()


def test_channel_rejects_zero_size() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        BoundedChannel(0)


def test_stream_plugin_is_registered_by_name_as_a_default() -> None:
    pm = get_plugin_manager(load_entrypoints=False)
    plugin = pm.get_plugin("stream")
    assert isinstance(plugin, StreamPlugin)
    assert pm.source_of("stream") == "default"
    assert ("stream", "default") in pm.list_plugins()
    # Each manager gets its own instance: no state shared between managers.
    assert get_plugin_manager(load_entrypoints=False).get_plugin("stream") is not plugin


@step(id="one")
async def one(ctx: StepContext[Any]) -> Any:
    return ctx.input_data


@pytest.mark.asyncio
async def test_blocked_stream_plugin_makes_stream_raise_clearly() -> None:
    pm = get_plugin_manager(load_entrypoints=False, block=["stream"])
    assert pm.get_plugin("stream") is None and pm.is_blocked("stream")
    run = await Workflow(id="wf").then(one).commit().create_run(plugin_manager=pm)
    with pytest.raises(StreamError, match="'stream' plugin is blocked"):
        run.stream(input_data={})
    # start() does not need the stream plugin.
    assert (await run.start({"a": 1})).result == {"a": 1}


@pytest.mark.asyncio
async def test_another_stream_provider_can_replace_the_builtin() -> None:
    class Provider:
        def __init__(self) -> None:
            self.inner = StreamPlugin()

        @hookimpl
        def open_event_stream(self, run_id: str, buffer_size: int) -> Any:
            return self.inner.open_event_stream(run_id, buffer_size)

        @hookimpl
        def on_event(self, event: Event) -> Any:
            return self.inner.on_event(event)

    provider = Provider()
    pm = get_plugin_manager(load_entrypoints=False, block=["stream"], plugins=[provider])
    run = await Workflow(id="wf").then(one).commit().create_run(plugin_manager=pm)
    types = [e.type async for e in run.stream(input_data={})]
    assert types == ["start", "step-start", "step-result", "step-finish", "finish"]


@pytest.mark.asyncio
async def test_third_plugin_sees_exactly_the_stream(pm: PluginManager, recorder: Recorder) -> None:
    @step(id="talk")
    async def talk(ctx: StepContext[Any]) -> Any:
        for i in range(3):
            await ctx.write({"i": i})
        return {"done": True}

    @step(id="two")
    def two(ctx: StepContext[Any]) -> Any:
        return {"sync": True}

    wf = Workflow(id="wf").then(one).parallel([talk, two]).commit()
    run = await wf.create_run(plugin_manager=pm)
    stream = run.stream(input_data={"x": 1})
    streamed = [e async for e in stream]
    assert (await stream.get_workflow_state()).result == {
        "talk": {"done": True},
        "two": {"sync": True},
    }
    assert recorder.events == streamed  # same objects, same order
    assert [e.seq for e in streamed] == list(range(len(streamed)))
    assert [e.type for e in streamed].count("step-output") == 3


@pytest.mark.asyncio
async def test_second_consumption_raises(pm: PluginManager) -> None:
    run = await Workflow(id="wf").then(one).commit().create_run(plugin_manager=pm)
    stream = run.stream(input_data={})
    assert len([e async for e in stream]) == 5
    with pytest.raises(StreamError, match="consumed once"):
        aiter(stream)


def _chatty_workflow(events: int) -> Workflow:
    @step(id="chatty")
    async def chatty(ctx: StepContext[Any]) -> Any:
        for i in range(events):
            await ctx.write(i)
        return {"wrote": events}

    return Workflow(id="wf").then(chatty).commit()


class Probe:
    """Records how full the stream's channel is whenever an event is dispatched."""

    def __init__(self) -> None:
        self.channel: BoundedChannel | None = None
        self.max_buffered = 0
        self.dispatched = 0
        self.reached = asyncio.Event()
        self.threshold = 0

    @hookimpl
    def on_event(self, event: Event) -> None:
        self.dispatched += 1
        if self.channel is not None:
            self.max_buffered = max(self.max_buffered, len(self.channel))
        if self.dispatched >= self.threshold:
            self.reached.set()


@pytest.mark.asyncio
async def test_slow_consumer_pauses_the_run_at_the_bound_and_it_resumes() -> None:
    bound, total_writes = 8, 2_000
    probe = Probe()
    pm = get_plugin_manager(load_entrypoints=False, plugins=[probe])
    run = await _chatty_workflow(total_writes).create_run(plugin_manager=pm)
    stream = run.stream(input_data={}, buffer_size=bound)
    assert isinstance(stream.channel, BoundedChannel)
    probe.channel = stream.channel
    events = aiter(stream)

    # Read one event, then stop reading: the run must fill the buffer and wait.
    first = await anext(events)
    probe.threshold = bound + 1
    await probe.reached.wait()
    for _ in range(100):  # give a runaway producer every chance to run ahead
        await asyncio.sleep(0)
    assert run.status == "running"
    assert len(stream.channel) == bound
    assert stream.channel._putters, "the run is waiting for room in the buffer"
    assert probe.dispatched == bound + 1  # one consumed, `bound` buffered, nothing more

    # Read again: the run resumes and every event arrives, in order, none lost.
    rest = [e async for e in events]
    seqs = [first.seq] + [e.seq for e in rest]
    assert seqs == list(range(len(seqs)))
    assert [e.type for e in rest].count("step-output") == total_writes
    assert rest[-1].type == "finish"
    assert probe.max_buffered <= bound  # memory stays flat: the buffer never exceeded its bound
    assert (await stream.get_workflow_state()).status == "success"
    await assert_no_tasks_left()


class _QueueChannel:
    """A plugin's own channel with only the protocol's required methods (no
    ``receive_nowait``): the hub must wait on ``receive()`` for each event."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self.received = 0

    async def receive(self) -> Event:
        event = await self.queue.get()
        if event is None:
            self.queue.put_nowait(None)  # the end stays the end for a later receive
            raise StopAsyncIteration
        self.received += 1
        return event

    def end(self) -> None:
        self.queue.put_nowait(None)

    def close(self) -> None:
        self.end()


class _QueueProvider:
    def __init__(self) -> None:
        self.channels: dict[str, _QueueChannel] = {}

    @hookimpl
    def open_event_stream(self, run_id: str, buffer_size: int) -> Any:
        self.channels[run_id] = _QueueChannel()
        return self.channels[run_id]

    @hookimpl
    def on_event(self, event: Event) -> None:
        channel = self.channels.get(event.run_id)
        if channel is not None:
            channel.queue.put_nowait(event)
            if event.type == "finish":
                channel.end()


@pytest.mark.asyncio
async def test_a_channel_without_receive_nowait_streams_every_event_through_its_receive(
    recorder: Recorder,
) -> None:
    @step(id="talk")
    async def talk(ctx: StepContext[Any]) -> Any:
        for i in range(5):
            await ctx.write({"i": i})
        return {"done": True}

    provider = _QueueProvider()
    pm = get_plugin_manager(load_entrypoints=False, block=["stream"], plugins=[provider, recorder])
    run = await Workflow(id="wf").then(one).parallel([talk]).commit().create_run(plugin_manager=pm)
    stream = run.stream(input_data={})
    beside = run.subscribe()
    reader = asyncio.create_task(_collect(beside))
    streamed = [e async for e in stream]
    assert streamed == recorder.events == await reader
    assert [e.seq for e in streamed] == list(range(len(streamed)))
    assert provider.channels[run.run_id].received == len(streamed)  # all through receive()
    assert stream.subscription.end_reason == beside.end_reason == "finished"


async def _collect(subscription: Any) -> list[Event]:
    return [event async for event in subscription]
