"""The suite's workloads for every system, at the sizes chosen (full or ``--quick``)."""

from __future__ import annotations

import gc
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stepstream import PluginManager, get_plugin_manager
from stepstream.plugins.jsonl import JsonLinesExporter

from . import _langgraph, _llama, _mastra, _stepstream
from ._shapes import Unit, gated_runs
from ._suite import Workload, repeated

LANGGRAPH = "langgraph"
LLAMA = "llama-index-workflows"
WORKLOADS = (
    "seq",
    "fanout",
    "plugins",
    "tokens",
    "concurrent-1k",
    "concurrent-10k",
    "durable",
    "ray",
    "cluster",
    "server",
    "studio",
)
GC_TUNED = "stepstream+gc-freeze"
MASTRA = _mastra.MASTRA
PEERS = (LANGGRAPH, LLAMA, MASTRA)


@dataclass(frozen=True)
class Sizes:
    """How big each workload is."""

    steps: int = 100  # seq: steps in the sequence
    width: int = 100  # fanout: steps in the parallel node
    runs: int = 30  # seq / fanout: runs per timed block, back to back
    tokens: int = 5000  # tokens: tokens per stream
    streams: int = 3  # tokens: streams per timed block
    concurrent_1k: int = 1000  # concurrent-1k: runs at once
    concurrent_10k: int = 10_000  # concurrent-10k: runs at once
    concurrent_steps: int = 3  # concurrent-*: steps per run
    ray_steps: int = 20  # ray: steps of the remote sequence
    ray_runs: int = 5  # ray: runs of that sequence per timed block
    ray_events: int = 5000  # ray: ctx.write() calls of the remote step
    durable_steps: tuple[int, ...] = (10, 100, 1000)  # durable: the sequences' lengths
    durable_runs: tuple[int, ...] = (30, 5, 1)  # durable: runs per block, for each length
    durable_concurrent: int = 1000  # durable: runs at once (3 steps each)
    server_writes: int = 20_000  # server-events: ctx.write calls of the streamed run
    server_chatty: int = 2_000  # server-followers: 200-byte writes of the followed run
    server_followers: int = 1_000  # server-followers: SSE clients of that run
    server_tokens: int = 200  # server-ttft: tokens of the answer
    studio_tokens: int = 5_000  # studio-tokens: tokens, one every 2 ms
    studio_events: int = 100_000  # studio-long: events of the stored run the page takes
    repeat: int = 5  # timed repeats (median reported)

    def concurrent(self, name: str) -> int:
        return self.concurrent_1k if name == "concurrent-1k" else self.concurrent_10k


FULL = Sizes()
QUICK = Sizes(
    runs=5,
    tokens=2000,
    streams=2,
    concurrent_1k=200,
    concurrent_10k=2000,
    ray_steps=10,
    ray_runs=3,
    durable_steps=(10, 100),
    durable_runs=(5, 1),
    durable_concurrent=100,
    server_writes=5_000,
    server_followers=200,
    studio_tokens=1_000,
    studio_events=10_000,
    repeat=3,
)


def seq(sizes: Sizes, pm: PluginManager) -> Workload:
    """``seq``: ``runs`` runs of a ``steps``-step sequence, one after the other."""
    n, runs = sizes.steps, sizes.runs
    units = {
        "stepstream": _stepstream.seq(n, pm),
        LANGGRAPH: _langgraph.seq(n),
        LLAMA: _llama.seq(n),
        "floor": _stepstream.floor_seq(n),
    }
    blocks = {name: repeated(unit, runs) for name, unit in units.items()}
    chunks = runs * _stepstream.events_per_run(n)
    blocks[MASTRA] = _mastra.CHILD.block(chunks, shape="seq", n=n, runs=runs)
    return Workload("seq", "us/step", runs * n, blocks)


def fanout(sizes: Sizes, pm: PluginManager) -> Workload:
    """``fanout``: ``runs`` runs of one parallel node of ``width`` steps."""
    n, runs = sizes.width, sizes.runs
    units = {
        "stepstream": _stepstream.fanout(n, pm),
        LANGGRAPH: _langgraph.fanout(n),
        LLAMA: _llama.fanout(n),
        "floor": _stepstream.floor_fanout(n),
    }
    blocks = {name: repeated(unit, runs) for name, unit in units.items()}
    chunks = runs * _stepstream.events_per_run(n)
    blocks[MASTRA] = _mastra.CHILD.block(chunks, shape="fanout", n=n, runs=runs)
    return Workload("fanout", "us/step", runs * n, blocks)


def concurrent(name: str, sizes: Sizes, pm: PluginManager) -> Workload:
    """``concurrent-*``: ``N`` gated runs of a ``concurrent_steps``-step sequence at once,
    each consumed by its own task; the block ends when the last run has ended."""
    n, steps = sizes.concurrent(name), sizes.concurrent_steps
    units = {
        "stepstream": _stepstream.gated(steps, pm),
        LANGGRAPH: _langgraph.gated(steps),
        LLAMA: _llama.gated(steps),
        "floor": _stepstream.floor_gated(steps),
    }
    warm = max(100, n // 10)
    blocks = {system: gated_runs(unit, n) for system, unit in units.items()}
    warmups = {system: gated_runs(unit, warm) for system, unit in units.items()}
    per_run = _stepstream.events_per_run(steps)
    if name == "concurrent-10k":
        blocks[GC_TUNED] = gc_tuned(blocks["stepstream"])
        warmups[GC_TUNED] = warmups["stepstream"]
    blocks[MASTRA] = _mastra.CHILD.block(n * per_run, shape="concurrent", n=n, steps=steps)
    warmups[MASTRA] = _mastra.CHILD.block(warm * per_run, shape="concurrent", n=warm, steps=steps)
    return Workload(name, "us/step", n * steps, blocks, warmups=warmups)


def gc_tuned(unit: Unit) -> Unit:
    """``unit`` run the way the README's recipe for many concurrent runs says: after set-up,
    ``gc.freeze()`` moves every object alive so far out of the collector's reach, and the
    youngest generation's threshold is raised from 700 to 50,000 allocations (so 10,000 live
    runs are not traversed again and again while they are being made). Both are undone after
    the block."""

    async def block() -> None:
        before = gc.get_threshold()
        gc.freeze()
        gc.set_threshold(50_000, before[1], before[2])
        try:
            await unit()
        finally:
            gc.set_threshold(*before)
            gc.unfreeze()

    return block


def plugins(sizes: Sizes, pm: PluginManager, directory: Path | None = None) -> Workload:
    """``plugins``: the ``seq`` block with each set of observer plugins, per event.

    ``stepstream`` is the default manager (``logger`` at Python's default ``WARNING``: no line
    written, its ``on_event`` out of the hook); ``no logger`` blocks it (the floor of this
    workload: what the plugins add is the ``vs floor`` column); ``logger at INFO`` writes
    every line to a handler that drops them (formatting and redaction paid); ``+metrics`` adds
    the metrics plugin; ``+jsonl`` adds it and the JSON-lines exporter writing a file per run
    (its worker thread shares the GIL with the event loop).
    """
    n, runs = sizes.steps, sizes.runs
    tmp = directory or Path(tempfile.mkdtemp(prefix="stepstream-bench-jsonl-"))
    quiet = get_plugin_manager(load_entrypoints=False, block=["logger"])
    metrics = get_plugin_manager(load_entrypoints=False, plugins=["metrics"])
    exporter = JsonLinesExporter(tmp)
    jsonl = get_plugin_manager(load_entrypoints=False, plugins=["metrics", ("jsonl", exporter)])
    per_event = runs * _stepstream.events_per_run(n)

    def at_info(unit: Unit) -> Unit:
        async def block() -> None:
            log = logging.getLogger("stepstream.events")
            handler, level, propagate = logging.NullHandler(), log.level, log.propagate
            log.addHandler(handler)
            log.setLevel(logging.INFO)
            log.propagate = False
            try:
                await unit()
            finally:
                log.removeHandler(handler)
                log.setLevel(level)
                log.propagate = propagate

        return block

    def flushed(unit: Unit) -> Unit:
        async def block() -> None:
            await unit()
            await exporter.aflush()  # the export is part of the cost

        return block

    seq_of: Callable[[PluginManager], Unit] = lambda m: repeated(_stepstream.seq(n, m), runs)  # noqa: E731
    blocks = {
        "stepstream": seq_of(pm),
        "no logger": seq_of(quiet),
        "logger at INFO": at_info(seq_of(pm)),
        "+metrics": seq_of(metrics),
        "+jsonl": flushed(seq_of(jsonl)),
    }
    return Workload("plugins", "us/event", per_event, blocks, floor="no logger")
