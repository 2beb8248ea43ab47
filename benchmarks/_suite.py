"""The suite's model: a workload is one block of work per system, timed side by side.

Every system's block of a workload does the same work (same shape, same number of runs,
steps or tokens). One untimed warm-up block of every system comes first; then each repeat
times every system's block once, the order rotating from repeat to repeat (so that a noisy
machine's drift hits every system alike), with ``gc.collect()`` before each block. Ratios
("vs floor", "speedup") are taken per repeat, between blocks of the same repeat, and their
median is reported.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from ._common import median, ratios, spread, timed_ns
from ._shapes import Unit

STEPSTREAM = "stepstream"


@dataclass
class Workload:
    """One workload: a block of work per system.

    ``per_block`` is how many units (steps, tokens, events) one block holds; the metric is
    microseconds (``scale`` 1e3) or milliseconds (1e6) per unit, or units per second when
    ``rate``. ``floor`` names the system the others are compared with (``vs floor``).
    """

    name: str
    metric: str
    per_block: int
    blocks: dict[str, Unit]
    floor: str | None = "floor"
    rate: bool = False
    scale: float = 1e3
    warmups: dict[str, Unit] = field(default_factory=dict)
    note: str = ""
    apart: tuple[str, ...] = ()
    """Systems shown for context only: no ``vs floor`` or ``speedup`` ratio."""
    checks: dict[str, Unit] = field(default_factory=dict)
    """Per system, a check of what its last block did (stored runs), run untimed after it."""
    versus: dict[str, str] = field(default_factory=dict)
    """Per peer, the stepstream system its ``speedup`` is taken against (default: the
    reference system of :func:`rows`)."""

    def value(self, ns: float) -> float:
        """The metric for a block that took ``ns`` nanoseconds."""
        if self.rate:
            return self.per_block / (ns / 1e9)
        return ns / self.per_block / self.scale


def repeated(unit: Unit, times: int) -> Unit:
    """A block of ``times`` runs of ``unit``, one after the other."""

    async def block() -> None:
        for _ in range(times):
            await unit()

    return block


@dataclass
class Measured:
    """Per-repeat block times (ns) of each system of a workload, and systems that failed."""

    workload: Workload
    ns: dict[str, list[int]]
    failed: dict[str, str] = field(default_factory=dict)


async def measure(w: Workload, repeat: int, log: bool = True) -> Measured:
    """One warm-up block per system, then ``repeat`` rotating rounds of timed blocks.

    A system whose block raises is dropped from the workload and reported as failed (its
    error kept), so that the others are still measured.
    """
    m = Measured(w, {})
    names = list(w.blocks)
    for name in names:
        t0 = time.perf_counter()
        try:
            await w.warmups.get(name, w.blocks[name])()
            if name in w.checks:
                await w.checks[name]()
        except Exception as exc:
            m.failed[name] = f"{type(exc).__name__}: {exc}"
            continue
        m.ns[name] = []
        if log:
            took = time.perf_counter() - t0
            print(f"  {w.name}: {name} warmed up ({took:.1f} s)", file=sys.stderr, flush=True)
    for r in range(repeat):
        alive = [name for name in names if name in m.ns]
        k = r % len(alive) if alive else 0
        for name in alive[k:] + alive[:k]:
            try:
                m.ns[name].append(await timed_ns(w.blocks[name]))
                if name in w.checks:
                    await w.checks[name]()
            except Exception as exc:
                m.failed[name] = f"{type(exc).__name__}: {exc}"
                del m.ns[name]
    return m


@dataclass
class Row:
    """One line of the table, with the numbers the targets are checked against."""

    workload: str
    system: str
    metric: str
    value: float
    values: Sequence[float] = ()
    vs_floor: float | None = None
    speedup: float | None = None
    speedup_label: str = ""
    note: str = ""

    def cells(self) -> list[str]:
        if math.isnan(self.value):
            return [self.workload, self.system, self.metric, "FAILED", "-", "-", "-"]
        vs = f"{self.vs_floor:.2f}x" if self.vs_floor is not None else "-"
        if self.speedup is None:
            sp = "-"
        else:
            sp = f"{self.speedup:.2f}x{(' ' + self.speedup_label) if self.speedup_label else ''}"
        sp_cell = f"{spread(self.values):.0%}" if len(self.values) > 1 else "-"
        return [self.workload, self.system, self.metric, fmt(self.value), vs, sp, sp_cell]


HEADER = ["workload", "system", "metric", "value", "vs floor", "stepstream speedup", "spread"]
RIGHT = {3, 4, 5, 6}


def fmt(value: float) -> str:
    """Three significant digits or so, thousands separated."""
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def rows(m: Measured, reference: str = STEPSTREAM) -> list[Row]:
    """The table lines of one measured workload.

    ``vs floor``: median over repeats of (system time / floor time) for the same work, so
    above 1 means slower than the floor (for rate metrics: floor rate / system rate).
    ``speedup``: median of (peer time / stepstream time); on stepstream's own line, when the
    floor is a peer client (``openai``), its ratio to that client's rate.
    """
    w, out = m.workload, []
    floor = m.ns.get(w.floor) if w.floor else None
    for name in w.blocks:
        if name in m.failed:
            out.append(Row(w.name, name, w.metric, math.nan, note=m.failed[name]))
            continue
        ns = m.ns[name]
        values = [w.value(t) for t in ns]
        row = Row(w.name, name, w.metric, median(values), values)
        out.append(row)
        if name in w.apart:
            continue
        if floor is not None and name != w.floor:
            row.vs_floor = median(ratios(ns, floor))
        against = w.versus.get(name, reference)
        ref = m.ns.get(against)
        if ref is not None and name not in (against, w.floor) and against != w.floor:
            row.speedup = median(ratios(ns, ref))
        if name == reference != w.floor and floor is not None and w.floor != "floor" and w.rate:
            row.speedup, row.speedup_label = median(ratios(floor, ns)), f"of {w.floor}"
    return out


def memory_rows(name: str, kib: dict[str, float], floor: str = "floor") -> list[Row]:
    """Lines for peak RSS per run (one child process per system; no repeats)."""
    out = []
    for system, value in kib.items():
        row = Row(name, system, "KiB/run (RSS)", value)
        if system != floor and floor in kib and kib[floor] > 0:
            row.vs_floor = value / kib[floor]
        if system not in (STEPSTREAM, floor) and kib.get(STEPSTREAM):
            row.speedup = value / kib[STEPSTREAM]
        out.append(row)
    return out


def find(table: Sequence[Row], workload: str, system: str, metric_prefix: str) -> Row | None:
    """The row of ``system`` in ``workload`` whose metric starts with ``metric_prefix``."""
    for row in table:
        if (
            row.workload == workload
            and row.system == system
            and row.metric.startswith(metric_prefix)
        ):
            return row
    return None
