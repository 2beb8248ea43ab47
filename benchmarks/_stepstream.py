"""stepstream's side of the suite and the floor, built from ``overhead.py``'s pieces.

``seq`` and ``fanout`` are exactly ``overhead.py``'s workflows and floor; the concurrent
shape adds the :class:`~benchmarks._shapes.Gate` to each step (and to the floor's
producer, at the same points), so that all runs of a block are alive at once.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from stepstream import PluginManager, Step, StepContext, Workflow, get_plugin_manager
from stepstream.run import DEFAULT_BUFFER_SIZE

from ._shapes import Unit, gate_step
from .overhead import (
    Floor,
    events_per_run,
    fanout_workflow,
    sequence_workflow,
    streamed_run,
)


def manager() -> PluginManager:
    """The plugin manager every stepstream run of the suite uses, as ``overhead.py`` does."""
    return get_plugin_manager(load_entrypoints=False)


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
    """``overhead.Floor.sequence``: the events of one ``steps``-step run, one consumer task."""
    floor, n, tags = Floor(), events_per_run(steps), itertools.count()
    return lambda: floor.sequence(next(tags), n)


def floor_fanout(width: int) -> Unit:
    """``overhead.Floor.fanout``: ``width`` producers of 3 events gathered, one consumer."""
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
