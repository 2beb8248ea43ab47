"""Per-event cost of the observability plugins: none vs logger, metrics and JSON-lines.

Run by hand::

    .venv/bin/python benchmarks/plugins_overhead.py [--repeat N] [--runs N]

Each configuration streams the same 100-step sequence (302 events a run) through
``run.stream()``, ``--runs`` runs back to back per timed block; configurations alternate within
each repeat so machine drift hits all of them alike; the table shows the median µs per event and
the extra over ``none``:

``none``     the built-ins a run needs (``stream``, ``openai-adapter``), ``logger`` blocked;
``logger``   plus the default ``logger`` with ``stepstream.events`` at WARNING (no line written);
``+metrics`` plus the ``metrics`` plugin;
``+jsonl``   plus the JSON-lines exporter writing a file per run to a temporary directory (its
             worker thread shares the GIL with the event loop, so its writing cost shows here).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from overhead import events_per_run, sequence_workflow, streamed_run

from stepstream import PluginManager, get_plugin_manager
from stepstream.plugins.jsonl import JsonLinesExporter

STEPS = 100


def configurations(directory: Path) -> dict[str, Callable[[], PluginManager]]:
    def jsonl() -> PluginManager:
        exporter = JsonLinesExporter(directory)
        return get_plugin_manager(load_entrypoints=False, plugins=["metrics", ("jsonl", exporter)])

    return {
        "none": lambda: get_plugin_manager(load_entrypoints=False, block=["logger"]),
        "logger": lambda: get_plugin_manager(load_entrypoints=False),
        "+metrics": lambda: get_plugin_manager(load_entrypoints=False, plugins=["metrics"]),
        "+jsonl": jsonl,
    }


async def block(pm: PluginManager, runs: int) -> float:
    wf = sequence_workflow(STEPS)
    expected = events_per_run(STEPS)
    gc.collect()
    started = time.perf_counter_ns()
    for _ in range(runs):
        await streamed_run(wf, pm, expected)
    exporter = pm.get_plugin("jsonl")
    if exporter is not None:
        await exporter.aflush()  # the export is part of the cost
    return (time.perf_counter_ns() - started) / 1e3 / (runs * expected)


async def main(repeat: int, runs: int) -> None:
    logging.getLogger("stepstream.events").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        configs = configurations(Path(tmp))
        managers = {name: make() for name, make in configs.items()}
        for pm in managers.values():  # warm-up
            await block(pm, 2)
        samples: dict[str, list[float]] = {name: [] for name in configs}
        for _ in range(repeat):
            for name, pm in managers.items():
                samples[name].append(await block(pm, runs))
        exporter = managers["+jsonl"].get_plugin("jsonl")
        if exporter is not None:
            exporter.close()
    print(
        f"python {sys.version.split()[0]}, {repeat} repeats x {runs} runs x "
        f"{events_per_run(STEPS)} events; median us/event"
    )
    base = statistics.median(samples["none"])
    print(f"{'config':<10} {'us/event':>9} {'extra':>8}  (min-max)")
    for name, values in samples.items():
        med = statistics.median(values)
        print(f"{name:<10} {med:9.2f} {med - base:+8.2f}  ({min(values):.2f}-{max(values):.2f})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main(args.repeat, args.runs))
