"""The durable workloads: runs that store every step, stepstream next to LangGraph's savers.

Four durable systems run the same sequences: ``stepstream+sqlite`` (:class:`SQLiteStorage`
on a file), ``stepstream+postgres`` (:class:`PostgresStorage`), ``langgraph+sqlite``
(``AsyncSqliteSaver`` on a file) and ``langgraph+postgres`` (``AsyncPostgresSaver`` on a
``psycopg_pool`` pool as large as stepstream's). Both PostgreSQL systems use one throwaway
server (the testing kit's :class:`~stepstream.testing.ThrowawayPostgres`), each system its own
database. ``stepstream`` is the in-memory engine on the same sequences: the floor of the
durable lines, so their ``vs floor`` is the cost of durability.

Every run of every block is checked after the block, untimed: a stepstream run must be stored
``success`` with its whole log (``3n + 2`` events, seqs ``0 .. 3n+1``), a LangGraph thread
must end with the input passed through and nothing left to run.
"""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from stepstream import PluginManager, Workflow
from stepstream.storage import Storage
from stepstream.storage.postgres import PostgresStorage
from stepstream.storage.sqlite import SQLiteStorage
from stepstream.testing import ThrowawayPostgres

from . import _langgraph, _stepstream
from ._report import Report
from ._shapes import INPUT, Unit, expect, gated_block, gated_runs
from ._stepstream import events_per_run, sequence_workflow
from ._suite import Workload, measure, repeated, rows
from ._workloads import Sizes

MEMORY = "stepstream"
BACKENDS = ("sqlite", "postgres")
POOL_SIZE = 8
"""Connections of each PostgreSQL system (stepstream's default pool size)."""

Check = Callable[[], Awaitable[None]]


@dataclass
class Stores:
    """The open stores of the durable section, one per system, and the runs to check."""

    stepstream: dict[str, Storage]
    langgraph: dict[str, Any]
    files: dict[str, str] = field(default_factory=dict)
    """The SQLite files of the two SQLite systems, by system."""
    started: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    """Per system: ``(run id or thread id, steps)`` of the runs since the last check."""


@contextlib.asynccontextmanager
async def open_stores(dsns: dict[str, str]) -> AsyncIterator[Stores]:
    """Every durable system's store: files in a temporary directory, and the PostgreSQL
    databases ``dsns["stepstream"]`` and ``dsns["langgraph"]``; all closed at the end."""
    with tempfile.TemporaryDirectory(prefix="stepstream-durable-") as tmp:
        async with contextlib.AsyncExitStack() as stack:
            ours: dict[str, Storage] = {"sqlite": SQLiteStorage(Path(tmp) / "stepstream.db")}
            ours["postgres"] = PostgresStorage(dsns["stepstream"], pool_size=POOL_SIZE)
            for store in ours.values():
                stack.push_async_callback(store.close)
            lite = await stack.enter_async_context(
                AsyncSqliteSaver.from_conn_string(str(Path(tmp) / "langgraph.db"))
            )
            await lite.setup()
            pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
                dsns["langgraph"],
                max_size=POOL_SIZE,
                kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
                open=False,
            )
            await pool.open()
            stack.push_async_callback(pool.close)
            pg = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
            await pg.setup()
            files = {f"{s}+sqlite": str(Path(tmp) / f"{s}.db") for s in ("stepstream", "langgraph")}
            yield Stores(ours, {"sqlite": lite, "postgres": pg}, files)


@contextlib.contextmanager
def throwaway_databases() -> Iterator[dict[str, str]]:
    """A throwaway PostgreSQL server with one empty database per system family
    (``stepstream``, ``langgraph``): their DSNs; the server is always stopped at the end."""
    import psycopg

    with ThrowawayPostgres(database="stepstream") as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE DATABASE langgraph")
        yield {"stepstream": dsn, "langgraph": dsn.rsplit("/", 1)[0] + "/langgraph"}


async def measure_all(
    report: Report,
    sizes: Sizes,
    pm: PluginManager,
    dsns: dict[str, str],
    log: Callable[[str], None],
) -> None:
    """Every durable workload and the footprint, into ``report`` (one event loop)."""
    async with open_stores(dsns) as stores:
        for steps, runs in zip(sizes.durable_steps, sizes.durable_runs, strict=True):
            t0 = time.perf_counter()
            report.rows += rows(await measure(sequence(stores, pm, steps, runs), sizes.repeat))
            log(f"  durable-seq-{steps}: {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        w = concurrent(stores, pm, sizes.durable_concurrent, sizes.concurrent_steps)
        report.rows += rows(await measure(w, sizes.repeat))
        log(f"  durable-concurrent: {time.perf_counter() - t0:.1f} s")
        steps = max(sizes.durable_steps)
        report.footprint = await footprint(stores, pm, steps)
        report.footprint_steps = steps


# -- the runs ---------------------------------------------------------------------------------


async def _stepstream_run(
    wf: Workflow, pm: PluginManager, store: Storage, steps: int, started: list[tuple[str, int]]
) -> None:
    run = await wf.create_run(plugin_manager=pm, storage=store)
    stream = run.stream(input_data=INPUT)
    count = 0
    async for _ in stream:
        count += 1
    result = await stream.get_workflow_state()
    expected = events_per_run(steps)
    expect(result.status == "success", f"durable stepstream run ended {result.status}")
    expect(count == expected, f"durable stepstream: {count}/{expected} events streamed")
    started.append((run.run_id, steps))


def _langgraph_unit(graph: Any, steps: int, started: list[tuple[str, int]]) -> Unit:
    ids = (f"t{i}" for i in itertools.count())

    async def run() -> None:
        thread = next(ids)
        config = {**_langgraph.CONFIG, "configurable": {"thread_id": thread}}
        count = 0
        async for _ in graph.astream({"x": INPUT}, config, stream_mode=_langgraph.MODES):
            count += 1
        expect(count == steps, f"durable langgraph: {count}/{steps} updates")
        started.append((thread, steps))

    return run


async def check_stepstream(store: Storage, runs: list[tuple[str, int]]) -> None:
    """Every run is stored ``success`` with its whole log, seqs ``0 .. 3n+1`` in order."""
    for run_id, steps in runs:
        snapshot = await store.load_run(run_id)
        expect(snapshot is not None, f"run {run_id} is not stored")
        assert snapshot is not None
        expect(snapshot.status == "success", f"run {run_id} is stored {snapshot.status}")
        seqs = [e.seq for e in await store.read_events(run_id)]
        expect(seqs == list(range(events_per_run(steps))), f"run {run_id}: log incomplete")
        expect(len(snapshot.state.get("steps", {})) == steps, f"run {run_id}: steps missing")
    runs.clear()


async def check_langgraph(saver: Any, graph: Any, runs: list[tuple[str, int]]) -> None:
    """Every thread's last checkpoint holds the input passed through, with nothing next."""
    for thread, _steps in runs:
        state = await graph.aget_state({"configurable": {"thread_id": thread}})
        expect(state.values == {"x": INPUT}, f"langgraph thread {thread}: {state.values!r}")
        expect(not state.next, f"langgraph thread {thread}: {state.next} still to run")
    runs.clear()


# -- the workloads ----------------------------------------------------------------------------


def _systems(
    stores: Stores, pm: PluginManager, steps: int, gated: bool
) -> tuple[dict[str, Unit], dict[str, Check]]:
    """One unit (one checked run) per system, and the check of each durable system's runs."""
    wf = _stepstream.gated_workflow(steps) if gated else sequence_workflow(steps)
    memory = _stepstream.gated(steps, pm) if gated else _stepstream.seq(steps, pm)
    units: dict[str, Unit] = {MEMORY: memory}
    checks: dict[str, Check] = {}
    for backend in BACKENDS:
        ours, theirs = f"stepstream+{backend}", f"langgraph+{backend}"
        store, saver = stores.stepstream[backend], stores.langgraph[backend]
        mine = stores.started.setdefault(ours, [])
        units[ours] = lambda s=store, m=mine: _stepstream_run(wf, pm, s, steps, m)  # type: ignore[misc]
        checks[ours] = lambda s=store, m=mine: check_stepstream(s, m)  # type: ignore[misc]
        graph = _langgraph.chain(steps, _langgraph.gated_node if gated else None, saver)
        others = stores.started.setdefault(theirs, [])
        units[theirs] = _langgraph_unit(graph, steps, others)
        checks[theirs] = lambda s=saver, g=graph, o=others: check_langgraph(s, g, o)  # type: ignore[misc]
    return units, checks


VERSUS = {f"langgraph+{b}": f"stepstream+{b}" for b in BACKENDS}
"""Each LangGraph system is compared with stepstream on the same database."""


def sequence(stores: Stores, pm: PluginManager, steps: int, runs: int) -> Workload:
    """``durable-seq-N``: ``runs`` runs of an ``N``-step sequence back to back, per system."""
    units, checks = _systems(stores, pm, steps, gated=False)
    return Workload(
        f"durable-seq-{steps}",
        "us/step",
        runs * steps,
        {name: repeated(unit, runs) for name, unit in units.items()},
        floor=MEMORY,
        checks=checks,
        versus=VERSUS,
    )


def concurrent(stores: Stores, pm: PluginManager, runs: int, steps: int) -> Workload:
    """``durable-concurrent``: ``runs`` gated runs of a ``steps``-step sequence at once."""
    units, checks = _systems(stores, pm, steps, gated=True)
    warm = max(100, runs // 10)
    return Workload(
        "durable-concurrent",
        "runs/s",
        runs,
        {name: gated_runs(unit, runs) for name, unit in units.items()},
        floor=MEMORY,
        rate=True,
        warmups={name: gated_runs(unit, warm) for name, unit in units.items()},
        checks=checks,
        versus=VERSUS,
    )


def profiled(store: Storage, pm: PluginManager, sizes: Sizes) -> list[tuple[str, Unit, int, str]]:
    """What ``--profile durable`` profiles: stepstream on ``store`` alone, a block of the
    longest sequence up to 100 steps, and a block of the concurrent runs; each ``(title,
    block, units, unit)``."""
    steps = max(n for n in sizes.durable_steps if n <= 100)
    runs = sizes.durable_runs[sizes.durable_steps.index(steps)]
    wf, started = sequence_workflow(steps), []

    async def sequence() -> None:
        for _ in range(runs):
            await _stepstream_run(wf, pm, store, steps, started)

    gated, n = _stepstream.gated_workflow(sizes.concurrent_steps), sizes.durable_concurrent

    async def concurrent() -> None:
        await gated_block(n, lambda: _stepstream_run(gated, pm, store, sizes.concurrent_steps, []))

    return [
        (f"durable-seq-{steps}: stepstream+sqlite", sequence, runs * steps, "step"),
        ("durable-concurrent: stepstream+sqlite", concurrent, n, "run"),
    ]


# -- the footprint ----------------------------------------------------------------------------


async def footprint(stores: Stores, pm: PluginManager, steps: int) -> dict[str, float]:
    """Bytes per step of one ``steps``-step run, per durable system: the sum of the sizes of
    the rows it wrote (SQLite: every value's length, integers 8 bytes; PostgreSQL:
    ``pg_column_size`` of each row)."""
    wf = sequence_workflow(steps)
    out: dict[str, float] = {}
    for backend in BACKENDS:
        started: list[tuple[str, int]] = []
        store = stores.stepstream[backend]
        await _stepstream_run(wf, pm, store, steps, started)
        run_id = started[0][0]
        tables = ("stepstream_runs", "stepstream_records", "stepstream_events")
        out[f"stepstream+{backend}"] = (
            await _row_bytes(stores, f"stepstream+{backend}", tables, "run_id", run_id) / steps
        )
        saver = stores.langgraph[backend]
        graph = _langgraph.chain(steps, None, saver)
        theirs: list[tuple[str, int]] = []
        await _langgraph_unit(graph, steps, theirs)()
        thread = theirs[0][0]
        lg_tables = (
            ("checkpoints", "writes")
            if backend == "sqlite"
            else ("checkpoints", "checkpoint_blobs", "checkpoint_writes")
        )
        out[f"langgraph+{backend}"] = (
            await _row_bytes(stores, f"langgraph+{backend}", lg_tables, "thread_id", thread) / steps
        )
    return out


async def _row_bytes(
    stores: Stores, system: str, tables: tuple[str, ...], key: str, value: str
) -> int:
    total = 0
    for table in tables:
        if system in stores.files:
            with contextlib.closing(sqlite3.connect(stores.files[system])) as conn:
                rows = conn.execute(f"SELECT * FROM {table} WHERE {key} = ?", (value,)).fetchall()
            total += sum(_sqlite_size(v) for row in rows for v in row)
        else:
            total += await _pg_bytes(stores, system, table, key, value)
    return total


def _sqlite_size(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, int | float):
        return 8
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    return len(value)  # type: ignore[arg-type]


async def _pg_bytes(stores: Stores, system: str, table: str, key: str, value: str) -> int:
    query = f"SELECT coalesce(sum(pg_column_size(t.*)), 0) AS n FROM {table} t WHERE {key} = %s"
    if system.startswith("stepstream"):
        store = stores.stepstream["postgres"]
        assert isinstance(store, PostgresStorage)
        pool = await store._get_pool()
        async with pool.connection() as conn:
            cur = await conn.execute(query, (value,))
            row = await cur.fetchone()
            return int(row[0]) if row else 0
    async with stores.langgraph["postgres"].conn.connection() as conn:
        cur = await conn.execute(query, (value,))
        found = await cur.fetchone()
        return int(found["n"]) if found else 0
