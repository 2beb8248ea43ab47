"""Peak RSS per run of ``N`` concurrent streamed runs, measured in a fresh process.

Run by the suite once per system and size (``python -m benchmarks._memory SYSTEM N``); it
prints one JSON line. In the child: import everything, build the system's 3-step gated
workflow, run a small warm-up block (so that code paths, caches and the allocator's first
arenas are in the baseline), ``gc.collect()``, read ``VmRSS`` as the baseline; then start
``N`` runs, each consumed by its own task, and wait until every run is inside its first
step (the :class:`~benchmarks._shapes.Gate`): all ``N`` runs are alive at once. ``VmRSS``
is read there (``live``), the gate opens, the runs finish and are checked, and ``VmHWM``
(the process's peak RSS, all ``N`` runs in flight) is read. Per run:
``(peak - baseline) / N``.

``--trace`` measures no RSS: it runs the same block under ``tracemalloc`` and prints, at the
moment all runs are in, what the runs keep alive, grouped by source line (``--group file``
by file), largest first, per run.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

from ._common import proc_status_kib, run_async
from ._shapes import Unit, gated_block

SYSTEMS = ("stepstream", "langgraph", "llama-index-workflows", "floor")
ROOT = Path(__file__).resolve().parents[1]
WARMUP_RUNS = 50


def build(system: str, steps: int) -> Unit:
    """The gated one-run unit of ``system`` (its modules imported only now)."""
    if system == "stepstream":
        from . import _stepstream

        return _stepstream.gated(steps, _stepstream.manager())
    if system == "floor":
        from . import _stepstream

        return _stepstream.floor_gated(steps)
    if system == "langgraph":
        from . import _langgraph

        return _langgraph.gated(steps)
    if system == "llama-index-workflows":
        from . import _llama

        return _llama.gated(steps)
    raise SystemExit(f"unknown system {system!r}; one of {', '.join(SYSTEMS)}")


async def measure_rss(system: str, n: int, steps: int) -> dict[str, Any]:
    unit = build(system, steps)
    await gated_block(WARMUP_RUNS, unit)
    gc.collect()
    baseline = proc_status_kib("VmRSS")
    live: list[int] = []
    gate, _ = await gated_block(n, unit, lambda: live.append(proc_status_kib("VmRSS")))
    peak = proc_status_kib("VmHWM")
    return {
        "system": system,
        "runs": n,
        "arrived": gate.arrived,
        "baseline_kib": baseline,
        "live_kib": live[0],
        "peak_kib": peak,
        "per_run_kib": (peak - baseline) / n,
        "live_per_run_kib": (live[0] - baseline) / n,
    }


async def trace(system: str, n: int, steps: int, group: str, top: int) -> None:
    unit = build(system, steps)
    await gated_block(WARMUP_RUNS, unit)
    gc.collect()
    tracemalloc.start(1)
    before = tracemalloc.take_snapshot()
    snaps: list[tracemalloc.Snapshot] = []
    await gated_block(n, unit, lambda: snaps.append(tracemalloc.take_snapshot()))
    tracemalloc.stop()
    diff = snaps[0].compare_to(before, "lineno" if group == "line" else "filename")
    total = sum(d.size_diff for d in diff)
    print(
        f"{system}: {n} runs x {steps} steps alive at once; tracemalloc growth "
        f"{total / 1024:,.0f} KiB = {total / n / 1024:.2f} KiB/run; top {top} by {group}:"
    )
    for d in diff[:top]:
        where = d.traceback[0]
        place = _where(where.filename)
        if group == "line":
            place += f":{where.lineno}"
        print(f"  {d.size_diff / n:9.0f} B/run {d.count_diff / n:7.2f} blocks/run  {place}")


def _where(filename: str) -> str:
    """A source file named short: relative to the repository or to site-packages."""
    if "__editable__" in filename:  # stepstream installed editable (strict): a link tree
        return "stepstream" + filename.split(os.sep + "stepstream", 1)[1]
    marker = "site-packages" + os.sep
    if marker in filename:
        return filename.split(marker, 1)[1]
    if filename.startswith(str(ROOT)):
        return os.path.relpath(filename, ROOT)
    return filename.rsplit(os.sep + "lib" + os.sep, 1)[-1]


def measure(system: str, n: int, steps: int = 3) -> dict[str, Any]:
    """Run the child for ``system`` and ``n`` runs; its JSON result."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks._memory", system, str(n), "--steps", str(steps)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"memory child {system} {n} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Peak RSS per run of N concurrent runs.")
    parser.add_argument("system", choices=SYSTEMS)
    parser.add_argument("runs", type=int)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--trace", action="store_true", help="tracemalloc breakdown instead")
    parser.add_argument("--group", choices=("line", "file"), default="line")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    if args.trace:
        run_async(trace(args.system, args.runs, args.steps, args.group, args.top))
    else:
        print(json.dumps(run_async(measure_rss(args.system, args.runs, args.steps))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
