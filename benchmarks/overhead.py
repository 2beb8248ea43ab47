"""Engine overhead per step and per event, next to a "floor" measured in the same process.

Run by hand (never collected by pytest)::

    .venv/bin/python benchmarks/overhead.py [--repeat N] [--quick] [--profile WORKLOAD]

What is measured
----------------
Every step below is a trivial ``async`` function returning its input; no schemas unless noted.
One plugin manager (``get_plugin_manager(load_entrypoints=False)``: only the built-in
``stream`` plugin) serves every run. A run of ``n`` executed steps emits ``3n + 2`` events
(``start``, then ``step-start``/``step-result``/``step-finish`` per step, then ``finish``).

``seq``        a 100-step sequence, each run consumed through ``run.stream()``; timed from
               ``create_run`` to ``get_workflow_state()`` returning, many runs back to back.
``fanout``     one ``parallel([...])`` node of 100 steps, consumed through ``run.stream()``.
``concurrent`` 1,000 streamed runs of a 3-step sequence at once in one event loop, each run
               consumed by its own task; also reports peak memory (see below).
``schemas``    ``seq`` with the same small pydantic model as input and output schema of every
               step: the difference to ``seq`` is the validation cost.
``start``      ``seq`` through ``run.start()`` (no stream consumer): the difference to ``seq``
               is the cost of the stream (channel put/get and the consumer's task switches).

The floor is what any design that turns each event into a hook call and delivers it to a
streaming consumer must pay at least, for the same number of events and the same shape. Per
event it does, in the producer: one coroutine call (``await f(ev)``), one call of a plain
``pluggy`` hook with one trivial hookimpl, and one ``asyncio.Queue.put`` into a queue bounded
at ``stepstream.run.DEFAULT_BUFFER_SIZE``, drained by a separate consumer task. Shapes: ``seq``
(and ``schemas``, ``start``): one producer and one consumer per run; ``fanout``: 100 producer
coroutines gathered (3 events each, plus the run's 2); ``concurrent``: 1,000 producer/consumer
pairs at once. Floor per step = 3 x floor per event.

How to read the table
---------------------
Times are medians over ``--repeat`` repeats (default 5), after one untimed warm-up, with
``gc.collect()`` before each timed block; floor and engine alternate within each repeat.
``us/step`` is the engine's wall time per executed step (run set-up and the run's own two
events amortised in), ``us/event`` the same time divided by the events. ``ratio`` is engine
per step over floor per step; the target is a ratio of at most 3 (``target`` column).
``spread`` is (max - min) / median of the engine's per-repeat times: large values mean a
noisy machine. ``mem`` (``concurrent`` only) is the tracemalloc peak over the baseline during
a separate, untimed pass (tracemalloc slows code down, so it is never on while timing), for
the engine and for the floor; the ``ru_maxrss`` growth seen during the first (warm-up) pass of
``concurrent`` is printed below the table (a process high-water mark: only growth above the
earlier peak shows). A components line splits the ``seq``-shaped floor into its three parts.

``--profile WORKLOAD`` runs one workload under cProfile instead (after a warm-up) and prints
the top 25 functions by own time (``tottime``).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import resource
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pluggy
from pydantic import BaseModel

from stepstream import PluginManager, Step, StepContext, Workflow, get_plugin_manager
from stepstream.run import DEFAULT_BUFFER_SIZE

try:  # imported as part of the suite (python -m benchmarks)
    from benchmarks._common import machine_lines, median, print_profile
except ModuleNotFoundError:  # run as a script: benchmarks/ is on sys.path
    from _common import machine_lines, median, print_profile  # type: ignore[no-redef,import-not-found]

WORKLOADS = ("seq", "fanout", "concurrent", "schemas", "start")
TARGET_RATIO = 3.0


# -- sizes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    """How big each workload is."""

    steps: int = 100  # seq / schemas / start: steps in the sequence
    width: int = 100  # fanout: steps in the parallel node
    runs: int = 200  # seq / fanout / schemas / start: runs per timed block
    concurrent_runs: int = 1000  # concurrent: runs at once
    concurrent_steps: int = 3  # concurrent: steps per run


QUICK = Sizes(steps=100, width=100, runs=20, concurrent_runs=200, concurrent_steps=3)


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


INPUT: dict[str, Any] = {"x": 1, "name": "bench", "tags": ["a", "b"]}


async def streamed_run(wf: Workflow, pm: PluginManager, expected_events: int) -> None:
    """One run consumed through ``run.stream()``, from ``create_run`` to its final state."""
    run = await wf.create_run(plugin_manager=pm)
    stream = run.stream(input_data=INPUT)
    count = 0
    async for _ in stream:
        count += 1
    result = await stream.get_workflow_state()
    if result.status != "success" or count != expected_events:
        raise RuntimeError(f"bad run: status {result.status}, {count}/{expected_events} events")


async def started_run(wf: Workflow, pm: PluginManager) -> None:
    """One run through ``run.start()``, no stream consumer."""
    run = await wf.create_run(plugin_manager=pm)
    result = await run.start(input_data=INPUT)
    if result.status != "success":
        raise RuntimeError(f"bad run: status {result.status}")


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


# -- timing -----------------------------------------------------------------------------------

Unit = Callable[[int], Awaitable[None]]


@dataclass
class Workload:
    """One row of the table: the engine's and the floor's unit of work, and the block's size.

    A block is ``units`` units (runs, or one batch of concurrent runs); floor and engine units
    are timed alternately so that both see the same machine state (a noisy host's speed can
    change by 2x for seconds at a time).
    """

    name: str
    description: str
    engine: Unit
    floor: Unit
    units: int
    steps_per_block: int
    events_per_block: int
    memory: bool = False

    async def engine_block(self) -> None:
        for i in range(self.units):
            await self.engine(i)

    async def floor_block(self) -> None:
        for i in range(self.units):
            await self.floor(i)


def build(sizes: Sizes, pm: PluginManager) -> dict[str, Workload]:
    """The five workloads for ``sizes``."""
    seq = sequence_workflow(sizes.steps)
    sch = sequence_workflow(sizes.steps, schemas=True, wf_id="schemas")
    fan = fanout_workflow(sizes.width)
    small = sequence_workflow(sizes.concurrent_steps, wf_id="small")
    floor = Floor()
    seq_events = events_per_run(sizes.steps)
    fan_events = events_per_run(sizes.width)
    small_events = events_per_run(sizes.concurrent_steps)

    async def seq_engine(_: int) -> None:
        await streamed_run(seq, pm, seq_events)

    async def sch_engine(_: int) -> None:
        await streamed_run(sch, pm, seq_events)

    async def start_engine(_: int) -> None:
        await started_run(seq, pm)

    async def seq_floor(i: int) -> None:
        await floor.sequence(i, seq_events)

    async def fan_engine(_: int) -> None:
        await streamed_run(fan, pm, fan_events)

    async def fan_floor(i: int) -> None:
        await floor.fanout(i, sizes.width)

    async def conc_engine(_: int) -> None:
        await asyncio.gather(
            *(streamed_run(small, pm, small_events) for _ in range(sizes.concurrent_runs))
        )

    async def conc_floor(_: int) -> None:
        await asyncio.gather(
            *(floor.sequence(r, small_events) for r in range(sizes.concurrent_runs))
        )

    runs = sizes.runs
    seq_steps, seq_ev = runs * sizes.steps, runs * seq_events
    return {
        "seq": Workload(
            "seq",
            f"{sizes.steps}-step sequence, stream",
            seq_engine,
            seq_floor,
            runs,
            seq_steps,
            seq_ev,
        ),
        "fanout": Workload(
            "fanout",
            f"parallel x{sizes.width}, stream",
            fan_engine,
            fan_floor,
            runs,
            runs * sizes.width,
            runs * fan_events,
        ),
        "concurrent": Workload(
            "concurrent",
            f"{sizes.concurrent_runs} runs x {sizes.concurrent_steps} steps",
            conc_engine,
            conc_floor,
            1,
            sizes.concurrent_runs * sizes.concurrent_steps,
            sizes.concurrent_runs * small_events,
            memory=True,
        ),
        "schemas": Workload(
            "schemas",
            f"{sizes.steps}-step seq, pydantic io",
            sch_engine,
            seq_floor,
            runs,
            seq_steps,
            seq_ev,
        ),
        "start": Workload(
            "start",
            f"{sizes.steps}-step seq, run.start()",
            start_engine,
            seq_floor,
            runs,
            seq_steps,
            seq_ev,
        ),
    }


async def timed_pair(w: Workload) -> tuple[int, int]:
    """Nanoseconds of one engine block and one floor block, their units interleaved."""
    gc.collect()
    engine = floor = 0
    clock = time.perf_counter_ns
    for i in range(w.units):
        if i % 2:
            t0 = clock()
            await w.engine(i)
            t1 = clock()
            await w.floor(i)
            t2 = clock()
            engine, floor = engine + t1 - t0, floor + t2 - t1
        else:
            t0 = clock()
            await w.floor(i)
            t1 = clock()
            await w.engine(i)
            t2 = clock()
            floor, engine = floor + t1 - t0, engine + t2 - t1
    return engine, floor


async def timed(body: Callable[[], Awaitable[None]]) -> int:
    """Nanoseconds one call of ``body`` takes, after a full collection."""
    gc.collect()
    t0 = time.perf_counter_ns()
    await body()
    return time.perf_counter_ns() - t0


async def traced_peak(body: Callable[[], Awaitable[None]]) -> int:
    """Peak bytes tracemalloc sees above its starting point while ``body`` runs (untimed)."""
    gc.collect()
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        await body()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - base


def maxrss_kib() -> int:
    """The process's ``ru_maxrss`` in KiB (Linux reports KiB, macOS bytes)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss // 1024 if sys.platform == "darwin" else rss


@dataclass
class Row:
    """Measured numbers of one workload."""

    workload: Workload
    engine_ns: list[int]
    floor_ns: list[int]
    mem_engine: int | None = None
    mem_floor: int | None = None
    rss_engine: int | None = None
    rss_floor: int | None = None


async def measure(w: Workload, repeat: int) -> Row:
    """Warm up once, then time floor and engine (interleaved) ``repeat`` times."""
    rss0 = maxrss_kib()
    await w.floor_block()
    rss1 = maxrss_kib()
    await w.engine_block()
    rss2 = maxrss_kib()
    row = Row(w, [], [])
    if w.memory:
        row.rss_floor, row.rss_engine = rss1 - rss0, rss2 - rss1
    for _ in range(repeat):
        engine, floor = await timed_pair(w)
        row.engine_ns.append(engine)
        row.floor_ns.append(floor)
    if w.memory:
        row.mem_floor = await traced_peak(w.floor_block)
        row.mem_engine = await traced_peak(w.engine_block)
    return row


async def measure_components(sizes: Sizes, repeat: int) -> dict[str, float]:
    """Floor parts per event in the ``seq`` shape: coroutine, hook, queue put/get, all three.

    The four variants are timed run by run in turn (like floor and engine), medians reported.
    """
    n_events = events_per_run(sizes.steps)
    parts = {
        "await f(ev)": Floor(hook=False, queue=False),
        "pluggy hook": Floor(coro=False, queue=False),
        "queue put+get": Floor(coro=False, hook=False),
        "all three": Floor(),
    }
    for floor in parts.values():  # warm-up
        await floor.sequence(0, n_events)
    samples: dict[str, list[int]] = {label: [] for label in parts}
    clock = time.perf_counter_ns
    for _ in range(repeat):
        gc.collect()
        totals = dict.fromkeys(parts, 0)
        for r in range(sizes.runs):
            for label, floor in parts.items():
                t0 = clock()
                await floor.sequence(r, n_events)
                totals[label] += clock() - t0
        for label, total in totals.items():
            samples[label].append(total)
    n = sizes.runs * n_events
    return {label: median(ts) / n / 1000 for label, ts in samples.items()}


# -- output -----------------------------------------------------------------------------------


def header(sizes: Sizes, repeat: int) -> str:
    return "\n".join(
        [
            "stepstream overhead benchmark",
            *machine_lines(("pluggy", "pydantic")),
            f"repeats {repeat} (median), runs/block {sizes.runs}, "
            f"buffer_size {DEFAULT_BUFFER_SIZE}",
        ]
    )


def table(rows: list[Row]) -> str:
    cols = (
        f"{'workload':<11}{'shape':<29}{'ms/block':>9}{'us/step':>9}{'us/event':>9}"
        f"{'floor/ev':>9}{'floor/st':>9}{'ratio':>7}{'(min-max)':>12}{'spread':>8}  "
        f"{'target <=3x':<11}"
    )
    lines = [cols, "-" * len(cols)]
    for row in rows:
        w = row.workload
        eng = median(row.engine_ns)
        flo = median(row.floor_ns)
        per_step = eng / w.steps_per_block / 1000
        per_event = eng / w.events_per_block / 1000
        floor_event = flo / w.events_per_block / 1000
        floor_step = 3 * floor_event
        # Engine and floor are timed side by side: each repeat gives its own ratio.
        ratios = [
            (e / w.steps_per_block) / (3 * f / w.events_per_block)
            for e, f in zip(row.engine_ns, row.floor_ns, strict=True)
        ]
        ratio = median(ratios)
        span = f"({min(ratios):.1f}-{max(ratios):.1f})"
        spread = (max(row.engine_ns) - min(row.engine_ns)) / eng * 100
        verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
        lines.append(
            f"{w.name:<11}{w.description:<29}{eng / 1e6:>9.1f}{per_step:>9.2f}{per_event:>9.2f}"
            f"{floor_event:>9.2f}{floor_step:>9.2f}{ratio:>6.1f}x{span:>12}{spread:>7.0f}%  "
            f"{verdict:<11}"
        )
    return "\n".join(lines)


def notes(rows: list[Row], components: dict[str, float]) -> str:
    lines = []
    for row in rows:
        if row.mem_engine is not None and row.mem_floor is not None:
            w = row.workload
            lines.append(
                f"mem {w.name}: tracemalloc peak above baseline (untimed pass): engine "
                f"{row.mem_engine / 1024:,.0f} KiB, floor {row.mem_floor / 1024:,.0f} KiB; "
                f"ru_maxrss growth in warm-up: engine {row.rss_engine} KiB, "
                f"floor {row.rss_floor} KiB"
            )
    parts = ", ".join(f"{k} {v:.3f}" for k, v in components.items())
    lines.append(f"floor components (seq shape, us/event): {parts}")
    lines.append(
        "us/step: engine wall time / executed steps; floor/st = 3 x floor/ev; "
        "ratio = median over repeats of (us/step / floor/st), engine and floor interleaved"
    )
    return "\n".join(lines)


# -- entry points -----------------------------------------------------------------------------


async def run_all(sizes: Sizes, repeat: int) -> None:
    pm = get_plugin_manager(load_entrypoints=False)
    workloads = build(sizes, pm)
    print(header(sizes, repeat), flush=True)
    rows = []
    for name in WORKLOADS:
        rows.append(await measure(workloads[name], repeat))
    components = await measure_components(sizes, repeat)
    print()
    print(table(rows))
    print(notes(rows, components))


async def run_profile(sizes: Sizes, name: str) -> None:
    pm = get_plugin_manager(load_entrypoints=False)
    w = build(sizes, pm)[name]
    await w.engine_block()  # warm-up
    gc.collect()
    profiler = cProfile.Profile()
    profiler.enable()
    t0 = time.perf_counter_ns()
    await w.engine_block()
    elapsed = time.perf_counter_ns() - t0
    profiler.disable()
    print(header(sizes, 1))
    print(
        f"profile of {name!r} ({w.description}): {w.steps_per_block} steps, "
        f"{w.events_per_block} events, {elapsed / 1e6:.0f} ms under cProfile "
        f"({elapsed / w.steps_per_block / 1000:.1f} us/step with profiling overhead)"
    )
    print_profile(pstats.Stats(profiler), per=w.steps_per_block, unit="step")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--repeat", type=int, default=None, help="timed repeats, median reported (5; 3 if --quick)"
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, a few seconds")
    parser.add_argument(
        "--profile", choices=WORKLOADS, metavar="WORKLOAD", help=f"one of {', '.join(WORKLOADS)}"
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    repeat: int = args.repeat if args.repeat is not None else (3 if args.quick else 5)
    if repeat < 1:
        parser.error("--repeat must be at least 1")
    with asyncio.Runner() as runner:
        if args.profile:
            runner.run(run_profile(sizes, args.profile))
        else:
            runner.run(run_all(sizes, repeat))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
