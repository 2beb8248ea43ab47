"""stepstream's benchmark suite: every workload, every system, one table.

    .venv/bin/python -m benchmarks [--quick] [--only NAME[,NAME]] [--repeat N]
                                   [--profile WORKLOAD] [--markdown]

Workloads: seq, fanout, plugins, tokens, concurrent-1k, concurrent-10k, durable, ray, cluster,
server (the HTTP server in its own process), studio (the Studio in headless Chromium).
Systems: stepstream, langgraph, llama-index-workflows, mastra (Node), openai (tokens only),
floor, and the durable ones (stepstream and LangGraph on SQLite and PostgreSQL); see
benchmarks/README.md.
Progress goes to stderr, the table and the targets to stdout.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import math
import pstats
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ._common import machine_lines, print_profile, run_async
from ._mastra import CHILD
from ._report import Report, legend, notes, peers_line, targets
from ._suite import Row, Workload, measure, memory_rows, rows
from ._workloads import FULL, QUICK, WORKLOADS, Sizes, concurrent, fanout, plugins, seq

PACKAGES = (
    "langgraph",
    "langchain-core",
    "langgraph-checkpoint-sqlite",
    "langgraph-checkpoint-postgres",
    "llama-index-workflows",
    "openai",
    "ray",
    "pluggy",
    "pydantic",
    "httpx",
)
MEMORY_SYSTEMS = ("stepstream", "langgraph", "llama-index-workflows", "floor")
PROFILED = tuple(w for w in WORKLOADS if w not in ("cluster", "server", "studio"))
"""The workloads ``--profile`` knows (the others' work is in other processes)."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def in_process(report: Report, name: str, sizes: Sizes, pm: Any) -> None:
    """Time one in-process workload (all systems in this process and loop)."""
    if name == "tokens":
        from ._tokens import tokens_workload

        with tokens_workload(sizes.tokens, pm, sizes.streams) as (w, sides):

            async def measured() -> Any:
                try:
                    return await measure(w, sizes.repeat)
                finally:
                    await sides.aclose()

            report.rows += rows(run_async(measured()))
            report.extra_notes.append(sides.cpu_note())
        return
    builders: dict[str, Callable[[], Workload]] = {
        "seq": lambda: seq(sizes, pm),
        "fanout": lambda: fanout(sizes, pm),
        "plugins": lambda: plugins(sizes, pm),
        "concurrent-1k": lambda: concurrent("concurrent-1k", sizes, pm),
        "concurrent-10k": lambda: concurrent("concurrent-10k", sizes, pm),
    }
    report.rows += rows(run_async(measure(builders[name](), sizes.repeat)))


def memory(report: Report, name: str, sizes: Sizes) -> None:
    """Peak RSS per run, one fresh child process per system."""
    from . import _memory

    n, results, kib = sizes.concurrent(name), {}, {}
    for system in MEMORY_SYSTEMS:
        t0 = time.perf_counter()
        try:
            results[system] = _memory.measure(system, n, sizes.concurrent_steps)
            kib[system] = float(results[system]["per_run_kib"])
        except RuntimeError as exc:
            results[system] = {"error": str(exc), "runs": n}
        log(f"  {name}: {system} memory child ({time.perf_counter() - t0:.1f} s)")
    report.memory[name] = results
    report.rows += memory_rows(name, kib)
    for system, result in results.items():
        if "error" in result:
            report.rows.append(Row(name, system, "KiB/run (RSS)", math.nan, note=result["error"]))


def durable_workloads(report: Report, sizes: Sizes, pm: Any) -> None:
    """The durable section: every durable system in one event loop, one PostgreSQL server."""
    from . import _durable

    with _durable.throwaway_databases() as dsns:
        run_async(_durable.measure_all(report, sizes, pm, dsns, log))


def ray_workloads(report: Report, sizes: Sizes) -> None:
    from . import _ray

    with _ray.ray_cluster():
        pm = _ray.ray_manager()
        for w in (
            _ray.step_workload(sizes.ray_steps, pm, sizes.ray_runs),
            _ray.relay_workload(sizes.ray_events, pm, sizes.ray_runs),
        ):
            report.rows += rows(run_async(measure(w, sizes.repeat)), reference="")


def profile(name: str, sizes: Sizes) -> None:
    """cProfile of one block of stepstream's side of ``name`` (after one warm-up block)."""
    from ._stepstream import manager

    pm = manager()

    def go(block: Callable[[], Awaitable[None]], per: int, unit: str, what: str) -> None:
        run_async(block())  # warm-up
        gc.collect()
        profiler = cProfile.Profile()
        t0 = time.perf_counter()
        profiler.enable()
        run_async(block())
        profiler.disable()
        took = time.perf_counter() - t0
        print(
            f"\nprofile of {what}: {per:,} {unit}s in {took * 1e3:.0f} ms under cProfile "
            f"({took * 1e6 / per:.2f} us/{unit} with profiling overhead)"
        )
        print_profile(pstats.Stats(profiler), per=per, unit=unit)

    if name == "tokens":
        from ._tokens import tokens_workload

        with tokens_workload(sizes.tokens, pm) as (w, _sides):
            go(w.blocks["stepstream"], w.per_block, "token", "tokens: stepstream Run.stream()")
    elif name == "ray":
        from . import _ray

        with _ray.ray_cluster():
            rpm = _ray.ray_manager()
            w = _ray.step_workload(sizes.ray_steps, rpm, sizes.ray_runs)
            go(w.blocks["stepstream+ray"], w.per_block, "step", "ray: remote sequence (driver)")
            w = _ray.relay_workload(sizes.ray_events, rpm, 1)
            go(w.blocks["stepstream+ray"], w.per_block, "event", "ray: event relay (driver)")
    elif name == "durable":
        import tempfile
        from pathlib import Path

        from stepstream.storage.sqlite import SQLiteStorage

        from . import _durable

        with tempfile.TemporaryDirectory(prefix="stepstream-profile-") as tmp:
            store = SQLiteStorage(Path(tmp) / "profile.db")
            try:
                for what, block, per, unit in _durable.profiled(store, pm, sizes):
                    go(block, per, unit, what)
            finally:
                run_async(store.close())
    else:
        builders = {"seq": seq, "fanout": fanout}
        w = builders[name](sizes, pm) if name in builders else concurrent(name, sizes, pm)
        go(w.blocks["stepstream"], w.per_block, "step", f"{name}: stepstream")


def run_all(report: Report, selected: list[str], sizes: Sizes, pm: Any) -> None:
    """Every selected workload, in order, into ``report``."""
    for name in selected:
        log(f"{name} ...")
        if name == "ray":
            ray_workloads(report, sizes)
            continue
        if name == "durable":
            durable_workloads(report, sizes, pm)
            continue
        if name == "cluster":  # several processes on one PostgreSQL (benchmarks/_cluster.py)
            from ._cluster import cluster_workloads

            report.rows += cluster_workloads(log)
            continue
        if name == "server":  # the HTTP server in its own process (benchmarks/_server.py)
            from ._server import server_workloads

            server_workloads(report, sizes, pm, log)
            continue
        if name == "studio":  # the Studio in headless Chromium (benchmarks/_studio.py)
            from ._studio import studio_workloads

            studio_workloads(report, sizes, log)
            continue
        in_process(report, name, sizes, pm)
        if name.startswith("concurrent"):
            memory(report, name, sizes)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, about a minute")
    parser.add_argument("--only", default="", help=f"comma-separated: {','.join(WORKLOADS)}")
    parser.add_argument("--repeat", type=int, default=None, help="timed repeats (5; 3 quick)")
    parser.add_argument(
        "--profile",
        choices=PROFILED,
        metavar="WORKLOAD",
        default=None,
        help="cProfile stepstream's side of one workload (top 25 by tottime)",
    )
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args(argv)
    only = [w.strip() for w in args.only.split(",") if w.strip()]
    unknown = [w for w in only if w not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload(s) {', '.join(unknown)}; one of {', '.join(WORKLOADS)}")
    args.selected = [w for w in WORKLOADS if not only or w in only]
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    base = QUICK if args.quick else FULL
    sizes = Sizes(**{**base.__dict__, "repeat": args.repeat or base.repeat})
    header = machine_lines(PACKAGES)
    if args.profile:
        print("\n".join(header))
        profile(args.profile, sizes)
        return 0
    from ._stepstream import manager

    started = time.perf_counter()
    report = Report(sizes, selected=args.selected)
    pm = manager()
    try:
        run_all(report, args.selected, sizes, pm)
    finally:
        CHILD.close()
    took = time.perf_counter() - started
    title = f"stepstream benchmark suite ({'quick' if args.quick else 'full'}, {took:.0f} s)"
    bullet = "- " if args.markdown else ""
    print(f"{'### ' if args.markdown else ''}{title}\n")
    print("\n".join(bullet + line for line in [*header, peers_line()]))
    print()
    print(report.table(args.markdown))
    print()
    print("targets:" if not args.markdown else "Targets:\n")
    print("\n".join(f"{bullet or '  '}{line}" for line in targets(report)))
    extra = notes(report)
    if extra:
        print("\nnotes:" if not args.markdown else "\nNotes:\n")
        print("\n".join(f"{bullet or '  '}{line}" for line in extra))
    print("\nhow to read:" if not args.markdown else "\nHow to read:\n")
    print("\n".join(f"{bullet or '  '}{line}" for line in legend(sizes)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
