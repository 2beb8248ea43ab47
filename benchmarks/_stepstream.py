"""stepstream's side of the suite and the floor.

Every step is a trivial ``async`` function returning its input. A run of ``n`` executed
steps emits ``3n + 2`` events (``start``, then ``step-start``/``step-result``/``step-finish``
per step, then ``finish``), each run consumed through ``run.stream()`` from ``create_run`` to
``get_workflow_state()``.

The floor is what any design that turns each event into a hook call and delivers it to a
streaming consumer must pay at least, for the same number of events and the same shape. Per
event it does, in the producer: one coroutine call (``await f(ev)``), one call of a plain
``pluggy`` hook with one trivial hookimpl, and one ``asyncio.Queue.put`` into a queue bounded
at ``stepstream.run.DEFAULT_BUFFER_SIZE``, drained by a separate consumer task. The
concurrent shape adds the :class:`~benchmarks._shapes.Gate` to each step (and to the floor's
producer, at the same points), so that all runs of a block are alive at once.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

import pluggy
from pydantic import BaseModel

from stepstream import PluginManager, Step, StepContext, Workflow, get_plugin_manager
from stepstream.run import DEFAULT_BUFFER_SIZE

from ._shapes import INPUT, BenchmarkError, Unit, gate_step


def manager() -> PluginManager:
    """The plugin manager every stepstream run of the suite uses: the built-in ``stream``,
    ``openai-adapter`` and ``logger`` plugins, no entry points."""
    return get_plugin_manager(load_entrypoints=False)


def events_per_run(steps: int) -> int:
    """Events one run of ``steps`` executed steps emits."""
    return 3 * steps + 2


# -- the engine's workloads -------------------------------------------------------------------


class Payload(BaseModel):
    """The small model of the ``schemas`` workload."""

    x: int
    name: str
    tags: list[str]


async def _identity(ctx: StepContext[Any]) -> Any:
    return ctx.input_data


def sequence_workflow(n: int, *, schemas: bool = False, wf_id: str = "seq") -> Workflow:
    """A committed workflow of ``n`` trivial steps in sequence."""
    wf = Workflow(id=wf_id)
    schema = Payload if schemas else None
    for i in range(n):
        wf.then(Step(id=f"s{i}", execute=_identity, input_schema=schema, output_schema=schema))
    return wf.commit()


def fanout_workflow(width: int) -> Workflow:
    """A committed workflow of one ``parallel`` node of ``width`` trivial steps."""
    steps: list[Step[Any, Any]] = [Step(id=f"p{i}", execute=_identity) for i in range(width)]
    return Workflow(id="fanout").parallel(steps).commit()


async def streamed_run(wf: Workflow, pm: PluginManager, expected_events: int) -> None:
    """One run consumed through ``run.stream()``, from ``create_run`` to its final state."""
    run = await wf.create_run(plugin_manager=pm)
    stream = run.stream(input_data=INPUT)
    count = 0
    async for _ in stream:
        count += 1
    result = await stream.get_workflow_state()
    if result.status != "success" or count != expected_events:
        raise BenchmarkError(f"bad run: status {result.status}, {count}/{expected_events} events")


async def started_run(wf: Workflow, pm: PluginManager) -> None:
    """One run through ``run.start()``, no stream consumer."""
    run = await wf.create_run(plugin_manager=pm)
    result = await run.start(input_data=INPUT)
    if result.status != "success":
        raise BenchmarkError(f"bad run: status {result.status}")


# -- the floor --------------------------------------------------------------------------------

_floor_spec = pluggy.HookspecMarker("floor")
_floor_impl = pluggy.HookimplMarker("floor")


class _FloorSpec:
    @_floor_spec
    def on_event(self, event: object) -> None:
        """One event."""


class _FloorPlugin:
    @_floor_impl
    def on_event(self, event: object) -> None:
        return None


def floor_hook() -> Callable[..., Any]:
    """A plain pluggy hook caller with one trivial hookimpl."""
    pm = pluggy.PluginManager("floor")
    pm.add_hookspecs(_FloorSpec)
    pm.register(_FloorPlugin())
    caller: Callable[..., Any] = pm.hook.on_event
    return caller


async def _noop(event: object) -> None:
    return None


class Floor:
    """The per-event minimum: coroutine call + pluggy hook call + bounded queue put/get."""

    def __init__(self, *, coro: bool = True, hook: bool = True, queue: bool = True) -> None:
        self.hook = floor_hook()
        self.use_coro, self.use_hook, self.use_queue = coro, hook, queue

    async def emit(self, q: asyncio.Queue[object], event: object) -> None:
        if self.use_coro:
            await _noop(event)
        if self.use_hook:
            self.hook(event=event)
        if self.use_queue:
            await q.put(event)

    async def produce(self, q: asyncio.Queue[object], tag: int, n: int) -> None:
        for i in range(n):
            await self.emit(q, (tag, i))

    async def consume(self, q: asyncio.Queue[object], n: int) -> None:
        if not self.use_queue:
            return
        for _ in range(n):
            await q.get()

    async def sequence(self, tag: int, n_events: int) -> None:
        """One producer, one consumer task, ``n_events`` events."""
        q: asyncio.Queue[object] = asyncio.Queue(DEFAULT_BUFFER_SIZE)
        consumer = asyncio.create_task(self.consume(q, n_events))
        await self.produce(q, tag, n_events)
        await consumer

    async def fanout(self, tag: int, width: int) -> None:
        """Start event, ``width`` producers of 3 events gathered, finish event; one consumer."""
        q: asyncio.Queue[object] = asyncio.Queue(DEFAULT_BUFFER_SIZE)
        consumer = asyncio.create_task(self.consume(q, events_per_run(width)))
        await self.emit(q, (tag, -1))
        await asyncio.gather(*(self.produce(q, tag * 100_000 + i, 3) for i in range(width)))
        await self.emit(q, (tag, -2))
        await consumer


# -- stepstream -------------------------------------------------------------------------------


def seq(steps: int, pm: PluginManager) -> Unit:
    """One run of a ``steps``-step sequence through ``run.stream()``, every event counted."""
    wf, expected = sequence_workflow(steps), events_per_run(steps)
    return lambda: streamed_run(wf, pm, expected)


def fanout(width: int, pm: PluginManager) -> Unit:
    """One run of one ``parallel`` node of ``width`` steps through ``run.stream()``."""
    wf, expected = fanout_workflow(width), events_per_run(width)
    return lambda: streamed_run(wf, pm, expected)


async def _gated_first(ctx: StepContext[Any]) -> Any:
    await gate_step(True)
    return ctx.input_data


async def _gated(ctx: StepContext[Any]) -> Any:
    await gate_step(False)
    return ctx.input_data


def gated_workflow(steps: int) -> Workflow:
    """``steps`` trivial steps in sequence, each passing the current gate first."""
    wf = Workflow(id="gated")
    for i in range(steps):
        wf.then(Step(id=f"c{i}", execute=_gated_first if i == 0 else _gated))
    return wf.commit()


def gated(steps: int, pm: PluginManager) -> Unit:
    """One run of :func:`gated_workflow` through ``run.stream()``, every event counted."""
    wf, expected = gated_workflow(steps), events_per_run(steps)
    return lambda: streamed_run(wf, pm, expected)


# -- the floor --------------------------------------------------------------------------------


def floor_seq(steps: int) -> Unit:
    """:meth:`Floor.sequence`: the events of one ``steps``-step run, one consumer task."""
    floor, n, tags = Floor(), events_per_run(steps), itertools.count()
    return lambda: floor.sequence(next(tags), n)


def floor_fanout(width: int) -> Unit:
    """:meth:`Floor.fanout`: ``width`` producers of 3 events gathered, one consumer."""
    floor, tags = Floor(), itertools.count()
    return lambda: floor.fanout(next(tags), width)


def floor_gated(steps: int) -> Unit:
    """``Floor.sequence`` with the gate passed where a step's body runs (after its first
    event), as in :func:`gated_workflow`."""
    floor, n, tags = Floor(), events_per_run(steps), itertools.count()

    async def run() -> None:
        tag = next(tags)
        q: asyncio.Queue[object] = asyncio.Queue(DEFAULT_BUFFER_SIZE)
        consumer = asyncio.create_task(floor.consume(q, n))
        await floor.emit(q, (tag, -1))
        for k in range(steps):
            await floor.emit(q, (tag, k, 0))
            await gate_step(k == 0)
            await floor.emit(q, (tag, k, 1))
            await floor.emit(q, (tag, k, 2))
        await floor.emit(q, (tag, -2))
        await consumer

    return run
