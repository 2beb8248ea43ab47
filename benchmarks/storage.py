"""Storage cost: what a durable run pays per step for its checkpoints, per backend.

Run by hand (never collected by pytest)::

    .venv/bin/python benchmarks/storage.py [--quick] [--repeat N] [--no-postgres]
                                           [--pg-nosync] [--profile BACKEND]

What is measured
----------------
Every step is a trivial ``async`` function returning its input; one plugin manager
(``get_plugin_manager(load_entrypoints=False)``) serves every run; runs go through
``run.start()`` (no stream consumer). A durable run checkpoints at every step boundary: the
step's new events go to ``append_events`` (3 a step) and the run's whole snapshot to
``save_run``; at the end one more checkpoint (events + final snapshot) and one for ``finish``
(events only). A run of ``n`` steps emits ``3n + 2`` events and makes ``2n + 3`` storage calls.

Backends (the columns of the tables below):

``none``      no storage: the engine alone, the baseline.
``sqlite``    ``SQLiteStorage`` on a file in a temporary directory (WAL, ``synchronous=NORMAL``:
              a commit appends to the WAL without fsync; fsync happens at WAL checkpoints).
``postgres``  ``PostgresStorage`` on a throwaway server this script starts on 127.0.0.1
              (``initdb`` + ``pg_ctl``, as the ``postgres`` user when run as root) and always
              stops at the end. Server defaults (``fsync=on``, ``synchronous_commit=on``: each
              commit waits for its WAL flush) unless ``--pg-nosync`` (``-F``, as the tests do).
              Skipped, with a note, when the server binaries are missing or ``--no-postgres``.

Each timed block uses fresh stores (a new SQLite file, a new PostgreSQL schema), opened and
their tables created before the clock starts; afterwards the block is checked (the store lists
exactly the block's runs, all ``success``; a few sampled runs have ``3n + 2`` events with
sequence numbers ``0..3n+1`` and a final snapshot counting them), and the script fails loudly
otherwise.

``sequence``   a 100-step sequence, ``runs`` runs per block; backends alternate run by run (the
               order rotates), so that a noisy machine's drift hits all of them alike.
``concurrent`` 1,000 runs of a 3-step sequence started at once (``asyncio.gather``) sharing one
               store; backends take turns block by block, the order rotating per repeat.

How to read the tables
----------------------
Medians over ``--repeat`` repeats (default 5; 3 with ``--quick``), after one untimed warm-up,
``gc.collect()`` before each timed block. ``us/step`` is wall time per executed step with the
run's set-up and its final checkpoints amortised in; ``extra/step`` is that minus ``none``'s,
paired within each repeat (``(min-max)`` over repeats); ``cpu/step`` is this process's CPU time
(all threads) per step, so ``us/step - cpu/step`` is time spent waiting (on fsync, on the
PostgreSQL server process, on thread hand-offs when the loop is idle). ``spread`` is
(max - min) / median of the per-repeat wall times.

The ``floors`` lines measure, in the same process, the unit costs a checkpoint is made of: one
hop to a one-thread executor and back (``run_in_executor`` of a no-op; the SQLite backend makes
two per step), one SQLite ``INSERT`` + commit on the WAL file called directly (no hop), one
PostgreSQL round trip (``SELECT 1``) and one PostgreSQL ``INSERT`` committed in autocommit mode
(round trip + WAL flush). The snapshot line gives the size of a 100-step run's final snapshot
as JSON: every step rewrites the whole snapshot, so a run writes about ``n/2`` times that.

``--profile BACKEND`` runs the ``sequence`` block for one backend under cProfile instead (after
a warm-up) and prints the top 20 functions by own time. cProfile sees the event loop's thread
only: the SQLite worker thread's ``execute`` calls are invisible there, and the loop's waiting
for them shows as ``select``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import json
import os
import platform
import pstats
import random
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from overhead import INPUT, events_per_run, sequence_workflow

import stepstream
from stepstream import PluginManager, Workflow, get_plugin_manager
from stepstream.storage import Storage
from stepstream.storage.sqlite import SQLiteStorage
from stepstream.testing import ThrowawayPostgres

if TYPE_CHECKING:
    import psycopg

BACKENDS = ("none", "sqlite", "postgres")
SAMPLED_RUNS = 5


# -- sizes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    """How big each workload is."""

    steps: int = 100  # sequence: steps per run
    runs: int = 10  # sequence: runs per backend per timed block
    concurrent_runs: int = 1000  # concurrent: runs at once
    concurrent_steps: int = 3  # concurrent: steps per run
    floor_ops: int = 2000  # floors: operations per timed block


QUICK = Sizes(steps=100, runs=5, concurrent_runs=200, concurrent_steps=3, floor_ops=500)


# -- backends ---------------------------------------------------------------------------------


@dataclass
class Backend:
    """One column: how to open a fresh, empty store (``None``: no storage)."""

    name: str
    directory: Path
    dsn: str | None = None
    opened: int = 0

    def open(self) -> Storage | None:
        self.opened += 1
        if self.name == "sqlite":
            return SQLiteStorage(self.directory / f"runs-{self.opened}.db")
        if self.name == "postgres":
            from stepstream.storage.postgres import PostgresStorage

            assert self.dsn is not None
            return PostgresStorage(self.dsn, schema=f"bench_{uuid.uuid4().hex[:16]}")
        return None


async def ready(store: Storage | None) -> None:
    """Open the store's connection and create its tables before any clock starts."""
    if store is not None and await store.list_runs(limit=1):
        raise RuntimeError("a fresh store is not empty")


async def close(stores: dict[str, Storage | None]) -> None:
    for store in stores.values():
        if store is not None:
            await store.close()


# -- runs and checks --------------------------------------------------------------------------


async def one_run(wf: Workflow, pm: PluginManager, store: Storage | None) -> str:
    """One run through ``run.start()``; its id."""
    run = await wf.create_run(plugin_manager=pm, storage=store)
    result = await run.start(input_data=INPUT)
    if result.status != "success":
        raise RuntimeError(f"run {run.run_id}: status {result.status}")
    return run.run_id


async def verify(store: Storage | None, run_ids: list[str], steps: int, label: str) -> None:
    """Fail loudly unless ``store`` holds exactly ``run_ids``, all successful, with all their
    events (checked on a few sampled runs)."""
    if store is None:
        return
    listed = await store.list_runs(limit=2000)
    if len(listed) != len(run_ids) or {r.run_id for r in listed} != set(run_ids):
        raise RuntimeError(f"{label}: store lists {len(listed)} runs, expected {len(run_ids)}")
    if bad := [r for r in listed if r.status != "success"]:
        raise RuntimeError(f"{label}: {len(bad)} runs not success, e.g. {bad[0]}")
    expected = events_per_run(steps)
    rng = random.Random(len(run_ids))
    sample = {run_ids[0], run_ids[-1], *rng.sample(run_ids, min(SAMPLED_RUNS, len(run_ids)))}
    for run_id in sorted(sample):
        events = await store.read_events(run_id)
        if [e.seq for e in events] != list(range(expected)):
            raise RuntimeError(
                f"{label}: run {run_id} has {len(events)} events, expected {expected} (0..n)"
            )
        snap = await store.load_run(run_id)
        if snap is None or snap.status != "success" or snap.last_seq != expected - 1:
            got = None if snap is None else (snap.status, snap.last_seq)
            raise RuntimeError(f"{label}: run {run_id} final snapshot {got}")
        if len(snap.state.get("steps", {})) != steps:
            raise RuntimeError(f"{label}: run {run_id} snapshot lacks step records")


def rotated(names: list[str], k: int) -> list[str]:
    k %= len(names)
    return names[k:] + names[:k]


@dataclass
class Sample:
    """Per-repeat wall and CPU nanoseconds of one backend."""

    wall: list[int] = field(default_factory=list)
    cpu: list[int] = field(default_factory=list)


async def sequence_block(
    backends: list[Backend], wf: Workflow, pm: PluginManager, runs: int, steps: int
) -> dict[str, tuple[int, int]]:
    """``runs`` runs per backend, backends alternating run by run; (wall, cpu) ns each."""
    stores: dict[str, Storage | None] = {}
    try:
        for b in backends:
            stores[b.name] = b.open()
            await ready(stores[b.name])
        names = list(stores)
        wall = dict.fromkeys(names, 0)
        cpu = dict.fromkeys(names, 0)
        ids: dict[str, list[str]] = {name: [] for name in names}
        gc.collect()
        for i in range(runs):
            for name in rotated(names, i):
                c0, t0 = time.process_time_ns(), time.perf_counter_ns()
                ids[name].append(await one_run(wf, pm, stores[name]))
                t1, c1 = time.perf_counter_ns(), time.process_time_ns()
                wall[name] += t1 - t0
                cpu[name] += c1 - c0
        for name in names:
            await verify(stores[name], ids[name], steps, f"sequence/{name}")
    finally:
        await close(stores)
    return {name: (wall[name], cpu[name]) for name in names}


async def concurrent_block(
    backend: Backend, wf: Workflow, pm: PluginManager, runs: int, steps: int
) -> tuple[int, int]:
    """``runs`` runs at once on one fresh store; (wall, cpu) ns."""
    store = backend.open()
    try:
        await ready(store)
        gc.collect()
        c0, t0 = time.process_time_ns(), time.perf_counter_ns()
        ids = await asyncio.gather(*(one_run(wf, pm, store) for _ in range(runs)))
        t1, c1 = time.perf_counter_ns(), time.process_time_ns()
        await verify(store, list(ids), steps, f"concurrent/{backend.name}")
    finally:
        await close({backend.name: store})
    return t1 - t0, c1 - c0


# -- floors -----------------------------------------------------------------------------------


Cost = tuple[float, float]
"""Wall and process-CPU microseconds per operation."""


def per_op(fn: Callable[[], None], n: int) -> Cost:
    c0, t0 = time.process_time_ns(), time.perf_counter_ns()
    for _ in range(n):
        fn()
    t1, c1 = time.perf_counter_ns(), time.process_time_ns()
    return (t1 - t0) / n / 1000, (c1 - c0) / n / 1000


async def async_per_op(fn: Callable[[], Awaitable[object]], n: int) -> Cost:
    c0, t0 = time.process_time_ns(), time.perf_counter_ns()
    for _ in range(n):
        await fn()
    t1, c1 = time.perf_counter_ns(), time.process_time_ns()
    return (t1 - t0) / n / 1000, (c1 - c0) / n / 1000


async def postgres_floors(
    conn: psycopg.AsyncConnection[Any], keys: Iterator[int], row: str, n: int
) -> dict[str, Cost]:
    """µs per ``SELECT 1`` round trip and per autocommit ``INSERT`` on ``conn``."""
    insert = "INSERT INTO bench_floor (k, v) VALUES (%s, %s)"
    return {
        "pg round trip": await async_per_op(lambda: conn.execute("SELECT 1"), n),
        "pg insert+commit": await async_per_op(lambda: conn.execute(insert, (next(keys), row)), n),
    }


async def measure_floors(directory: Path, dsn: str | None, n: int, repeat: int) -> dict[str, Cost]:
    """Median wall and CPU µs per unit operation (see the module docstring)."""
    samples: dict[str, list[Cost]] = {}
    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(max_workers=1)
    conn = sqlite3.connect(directory / "floor.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    keys = iter(range(10**9))
    row = "x" * 200

    def sqlite_insert() -> None:
        conn.execute("INSERT INTO t (k, v) VALUES (?, ?)", (next(keys), row))

    pg = None
    if dsn is not None:
        import psycopg

        pg = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
        await pg.execute("CREATE TABLE bench_floor (k BIGINT PRIMARY KEY, v TEXT NOT NULL)")
    try:
        for _ in range(repeat):
            gc.collect()
            ops: dict[str, Cost] = {
                "executor hop": await async_per_op(lambda: loop.run_in_executor(executor, int), n),
                "sqlite insert+commit": per_op(sqlite_insert, n),
            }
            if pg is not None:
                ops.update(await postgres_floors(pg, keys, row, n))
            for label, us in ops.items():
                samples.setdefault(label, []).append(us)
    finally:
        conn.close()
        executor.shutdown()
        if pg is not None:
            await pg.execute("DROP TABLE bench_floor")
            await pg.close()
    return {
        label: (statistics.median(w for w, _ in us), statistics.median(c for _, c in us))
        for label, us in samples.items()
    }


async def snapshot_size(directory: Path, wf: Workflow, pm: PluginManager) -> int:
    """Bytes of a finished run's snapshot as JSON (what ``save_run`` writes at the end)."""
    store = SQLiteStorage(directory / "size.db")
    try:
        run_id = await one_run(wf, pm, store)
        snap = await store.load_run(run_id)
        assert snap is not None
        return len(json.dumps(snap.__dict__))
    finally:
        await store.close()


# -- output -----------------------------------------------------------------------------------


@dataclass
class Env:
    """What the header prints about the machine and the servers."""

    pg_version: str | None = None
    pg_settings: str = ""
    pg_note: str | None = None


def filesystem(path: Path) -> str:
    """The type of the filesystem holding ``path`` (Linux; ``?`` elsewhere)."""
    best, kind = "", "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) > 2 and str(path).startswith(parts[1]) and len(parts[1]) > len(best):
                best, kind = parts[1], parts[2]
    return kind


async def postgres_env(dsn: str) -> tuple[str, str]:
    import psycopg

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        values = []
        for name in ("server_version", "fsync", "synchronous_commit", "wal_sync_method"):
            cur = await conn.execute(f"SHOW {name}")
            row = await cur.fetchone()
            values.append(str(row[0]) if row else "?")
    version = values[0]
    lib = psycopg.pq.version()
    settings = (
        f"fsync={values[1]}, synchronous_commit={values[2]}, wal_sync_method={values[3]}; "
        f"psycopg {psycopg.__version__}, libpq {lib // 10000}.{lib % 10000}"
    )
    return version, settings


def header(sizes: Sizes, repeat: int, directory: Path, env: Env) -> str:
    lines = [
        f"stepstream {stepstream.__version__} storage benchmark",
        f"python {platform.python_version()} ({platform.python_implementation()})",
        f"machine {platform.platform()}, {platform.machine()}, cpu_count {os.cpu_count()}",
        f"sqlite {sqlite3.sqlite_version} (WAL, synchronous=NORMAL), temp dir "
        f"{directory.parent} on {filesystem(directory)}",
    ]
    if env.pg_version is not None:
        lines.append(f"postgresql {env.pg_version} (throwaway, 127.0.0.1 TCP): {env.pg_settings}")
    if env.pg_note is not None:
        lines.append(f"postgresql: skipped ({env.pg_note})")
    lines.append(
        f"repeats {repeat} (median); sequence {sizes.runs} runs x {sizes.steps} steps per "
        f"backend per block; concurrent {sizes.concurrent_runs} runs x "
        f"{sizes.concurrent_steps} steps"
    )
    return "\n".join(lines)


def spread(values: list[int]) -> float:
    return (max(values) - min(values)) / statistics.median(values) * 100


def table(title: str, results: dict[str, Sample], steps: int, runs: int, *, totals: bool) -> str:
    cols = f"{'backend':<10}"
    if totals:
        cols += f"{'seconds':>9}{'runs/s':>9}"
    cols += f"{'us/step':>9}{'extra/step':>12}{'(min-max)':>18}{'cpu/step':>10}{'spread':>8}"
    lines = [title, cols, "-" * len(cols)]
    base = results.get("none")
    for name, s in results.items():
        wall = statistics.median(s.wall)
        line = f"{name:<10}"
        if totals:
            line += f"{wall / 1e9:>9.2f}{runs / (wall / 1e9):>9.0f}"
        line += f"{wall / steps / 1000:>9.1f}"
        if base is not None and name != "none":
            extras = [(w - b) / steps / 1000 for w, b in zip(s.wall, base.wall, strict=True)]
            span = f"({min(extras):.1f}-{max(extras):.1f})"
            line += f"{statistics.median(extras):>12.1f}{span:>18}"
        else:
            line += f"{'-':>12}{'':>18}"
        line += f"{statistics.median(s.cpu) / steps / 1000:>10.1f}{spread(s.wall):>7.0f}%"
        lines.append(line)
    return "\n".join(lines)


# -- entry points -----------------------------------------------------------------------------


async def run_all(sizes: Sizes, repeat: int, directory: Path, dsn: str | None, env: Env) -> None:
    pm = get_plugin_manager(load_entrypoints=False)
    names = ["none", "sqlite"] + (["postgres"] if dsn is not None else [])
    backends = [Backend(name, directory, dsn) for name in names]
    if dsn is not None:
        env.pg_version, env.pg_settings = await postgres_env(dsn)
    print(header(sizes, repeat, directory, env), flush=True)

    seq = sequence_workflow(sizes.steps, wf_id="seq")
    small = sequence_workflow(sizes.concurrent_steps, wf_id="small")
    seq_results = {name: Sample() for name in names}
    conc_results = {name: Sample() for name in names}

    await sequence_block(backends, seq, pm, 2, sizes.steps)  # warm-up
    for _ in range(repeat):
        block = await sequence_block(backends, seq, pm, sizes.runs, sizes.steps)
        for name, (wall, cpu) in block.items():
            seq_results[name].wall.append(wall)
            seq_results[name].cpu.append(cpu)
    print(".", end="", flush=True)

    for b in backends:  # warm-up
        await concurrent_block(b, small, pm, sizes.concurrent_runs, sizes.concurrent_steps)
    for r in range(repeat):
        for name in rotated(names, r):
            b = backends[names.index(name)]
            wall, cpu = await concurrent_block(
                b, small, pm, sizes.concurrent_runs, sizes.concurrent_steps
            )
            conc_results[name].wall.append(wall)
            conc_results[name].cpu.append(cpu)
    print(".", end="", flush=True)

    floors = await measure_floors(directory, dsn, sizes.floor_ops, repeat)
    size = await snapshot_size(directory, seq, pm)
    print()
    print()
    print(
        table(
            f"sequence: {sizes.steps}-step run via run.start(), {sizes.runs} runs per block, "
            f"backends alternating run by run ({events_per_run(sizes.steps)} events, "
            f"{2 * sizes.steps + 3} storage calls a run)",
            seq_results,
            sizes.runs * sizes.steps,
            sizes.runs,
            totals=False,
        )
    )
    print()
    n_steps = sizes.concurrent_runs * sizes.concurrent_steps
    print(
        table(
            f"concurrent: {sizes.concurrent_runs} runs x {sizes.concurrent_steps} steps started "
            f"at once (asyncio.gather), one store; checked: {sizes.concurrent_runs} runs "
            "success, sampled event logs complete",
            conc_results,
            n_steps,
            sizes.concurrent_runs,
            totals=True,
        )
    )
    print()
    parts = ", ".join(f"{label} {w:.1f} (cpu {c:.1f})" for label, (w, c) in floors.items())
    print(f"floors (us/op wall, median; cpu: this process): {parts}")
    print(
        f"snapshot: a finished {sizes.steps}-step run's snapshot is {size / 1024:.1f} KiB of "
        f"JSON; each step rewrites the whole snapshot (~{size * sizes.steps / 2 / 1e6:.1f} MB "
        "a run)"
    )
    print(
        "us/step: wall time per executed step; extra/step: minus none's, paired per repeat; "
        "cpu/step: this process's CPU time (all threads) per step"
    )


async def run_profile(sizes: Sizes, name: str, directory: Path, dsn: str | None, env: Env) -> None:
    pm = get_plugin_manager(load_entrypoints=False)
    backend = Backend(name, directory, dsn)
    if dsn is not None:
        env.pg_version, env.pg_settings = await postgres_env(dsn)
    wf = sequence_workflow(sizes.steps, wf_id="seq")
    await sequence_block([backend], wf, pm, 2, sizes.steps)  # warm-up
    store = backend.open()
    try:
        await ready(store)
        gc.collect()
        profiler = cProfile.Profile()
        c0, t0 = time.process_time_ns(), time.perf_counter_ns()
        profiler.enable()
        ids = [await one_run(wf, pm, store) for _ in range(sizes.runs)]
        profiler.disable()
        elapsed, cpu = time.perf_counter_ns() - t0, time.process_time_ns() - c0
        await verify(store, ids, sizes.steps, f"profile/{name}")
    finally:
        await close({name: store})
    steps = sizes.runs * sizes.steps
    print(header(sizes, 1, directory, env))
    print(
        f"profile of the {name} sequence: {sizes.runs} runs x {sizes.steps} steps, "
        f"{elapsed / 1e6:.0f} ms under cProfile ({elapsed / steps / 1000:.1f} us/step wall, "
        f"{cpu / steps / 1000:.1f} us/step process CPU, with profiling overhead); event-loop "
        "thread only"
    )
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.strip_dirs().sort_stats("tottime").print_stats(20)


@contextlib.contextmanager
def sigterm_exits() -> Iterator[None]:
    """Turn SIGTERM into SystemExit so that the ``finally`` stopping the server runs."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--repeat", type=int, default=None, help="timed repeats, median reported (5; 3 if --quick)"
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL column")
    parser.add_argument(
        "--pg-nosync", action="store_true", help="start the server with fsync off (-F)"
    )
    parser.add_argument(
        "--profile", choices=BACKENDS, metavar="BACKEND", help=f"one of {', '.join(BACKENDS)}"
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    repeat: int = args.repeat if args.repeat is not None else (3 if args.quick else 5)
    if repeat < 1:
        parser.error("--repeat must be at least 1")
    env = Env()
    server: ThrowawayPostgres | None = None
    want_pg = args.profile == "postgres" if args.profile else not args.no_postgres
    if want_pg:
        try:
            server = ThrowawayPostgres(fsync=not args.pg_nosync, database="stepstream_bench")
        except FileNotFoundError as exc:
            env.pg_note = str(exc)
    elif not args.profile:
        env.pg_note = "--no-postgres"
    if args.profile == "postgres" and server is None:
        parser.error(f"--profile postgres: {env.pg_note}")
    with sigterm_exits(), tempfile.TemporaryDirectory(prefix="stepstream-bench-") as tmp:
        try:
            dsn = server.start() if server is not None else None
            directory = Path(tmp)
            # The loop is closed (its tasks canceled, connections closed) before the server stops.
            with asyncio.Runner() as runner:
                if args.profile:
                    runner.run(run_profile(sizes, args.profile, directory, dsn, env))
                else:
                    runner.run(run_all(sizes, repeat, directory, dsn, env))
        finally:
            if server is not None:
                server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
