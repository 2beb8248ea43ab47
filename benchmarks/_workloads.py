"""The suite's workloads for every system, at the sizes chosen (full or ``--quick``)."""

from __future__ import annotations

from dataclasses import dataclass

from stepstream import PluginManager

from . import _langgraph, _llama, _stepstream
from ._shapes import gated_runs
from ._suite import Workload, repeated

LANGGRAPH = "langgraph"
LLAMA = "llama-index-workflows"
WORKLOADS = (
    "seq", "fanout", "tokens", "concurrent-1k", "concurrent-10k", "durable", "ray", "cluster"
)  # fmt: skip
PEERS = (LANGGRAPH, LLAMA)


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
    return Workload(
        name,
        "us/step",
        n * steps,
        {system: gated_runs(unit, n) for system, unit in units.items()},
        warmups={system: gated_runs(unit, warm) for system, unit in units.items()},
    )
