"""The suite's output: the table (plain or Markdown), the targets and the notes below it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ._common import markdown_table, text_table
from ._suite import HEADER, RIGHT, STEPSTREAM, Row, find
from ._workloads import LANGGRAPH, LLAMA, PEERS, Sizes

FLOOR_RATIO = 3.0
PEER_SPEEDUP = 10.0
TOKEN_RATIO = 0.9
KIB_PER_RUN = 20.0
RAY_EVENTS_PER_S = 1000.0


@dataclass
class Report:
    """Everything measured, gathered while the suite runs."""

    sizes: Sizes
    rows: list[Row] = field(default_factory=list)
    memory: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    selected: Sequence[str] = ()

    def table(self, markdown: bool) -> str:
        cells = [row.cells() for row in self.rows]
        if markdown:
            return markdown_table(HEADER, cells, RIGHT)
        return text_table(HEADER, cells, RIGHT)


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "NOT met")


def _ok(row: Row | None) -> bool:
    return row is not None and not math.isnan(row.value)


def targets(report: Report) -> list[str]:
    """One line per target: what was measured and whether it is met."""
    t, sizes, lines = report.rows, report.sizes, []
    for name in ("seq", "fanout", "concurrent-1k", "concurrent-10k"):
        if name not in report.selected:
            continue
        row = find(t, name, STEPSTREAM, "us/step")
        ok = _ok(row) and row is not None and row.vs_floor is not None
        ratio = row.vs_floor if ok and row is not None else None
        lines.append(
            f"per step within {FLOOR_RATIO:.0f}x the floor, {name}: "
            + (f"{ratio:.2f}x" if ratio is not None else "not measured")
            + f"  {_verdict(None if ratio is None else ratio <= FLOOR_RATIO)}"
        )
    for name in ("seq", "fanout"):
        if name not in report.selected:
            continue
        for peer in PEERS:
            row = find(t, name, peer, "us/step")
            sp = row.speedup if _ok(row) and row is not None else None
            lines.append(
                f">= {PEER_SPEEDUP:.0f}x faster than {peer}, {name}: "
                + (f"{sp:.1f}x" if sp is not None else "not measured")
                + f"  {_verdict(None if sp is None else sp >= PEER_SPEEDUP)}"
            )
    if "tokens" in report.selected:
        row = find(t, "tokens", STEPSTREAM, "tok/s")
        sp = row.speedup if _ok(row) and row is not None else None
        lines.append(
            f"token relay >= {TOKEN_RATIO}x the bare openai client's tokens/s: "
            + (f"{sp:.2f}x" if sp is not None else "not measured")
            + f"  {_verdict(None if sp is None else sp >= TOKEN_RATIO)}"
        )
    if "concurrent-10k" in report.selected:
        row = find(t, "concurrent-10k", STEPSTREAM, "KiB/run")
        kib = row.value if _ok(row) and row is not None else None
        runs = sizes.concurrent_10k
        scaled = "" if runs == 10_000 else f" (measured at {runs:,} runs: --quick)"
        lines.append(
            f"10,000 concurrent streamed runs under {KIB_PER_RUN:.0f} KiB RSS per run{scaled}: "
            + (f"{kib:.1f} KiB" if kib is not None else "not measured")
            + f"  {_verdict(None if kib is None else kib < KIB_PER_RUN)}"
        )
    if "ray" in report.selected:
        row = find(t, "ray", "stepstream+ray", "events/s")
        rate = row.value if _ok(row) and row is not None else None
        lines.append(
            "Ray: remote events reach the driver in order at thousands per second: "
            + (
                f"{rate:,.0f} events/s, all {sizes.ray_events:,} in order in every repeat"
                if rate is not None
                else "FAILED (see notes: out of order, missing or not run)"
            )
            + f"  {_verdict(None if rate is None else rate >= RAY_EVENTS_PER_S)}"
        )
    return lines


def notes(report: Report) -> list[str]:
    """Failures, the memory children's raw numbers, the Ray overhead per step."""
    lines = [f"FAILED {r.workload} / {r.system}: {r.note}" for r in report.rows if r.note]
    for name, systems in report.memory.items():
        parts = []
        for system, m in systems.items():
            if "error" in m:
                parts.append(f"{system} FAILED ({m['error'][:200]})")
                continue
            parts.append(
                f"{system} {m['baseline_kib'] / 1024:.0f} -> live {m['live_kib'] / 1024:.0f}"
                f" / peak {m['peak_kib'] / 1024:.0f} MiB ({m['live_per_run_kib']:.1f} KiB/run live)"
            )
        lines.append(
            f"memory {name} ({next(iter(systems.values())).get('runs', '?')} runs, "
            f"baseline -> RSS with all runs in / VmHWM): " + "; ".join(parts)
        )
    remote = find(report.rows, "ray", "stepstream+ray", "ms/step")
    local = find(report.rows, "ray", STEPSTREAM, "ms/step")
    if _ok(remote) and _ok(local) and remote is not None and local is not None:
        lines.append(
            f"ray: a remote step costs {remote.value - local.value:.2f} ms more than a local "
            f"one ({remote.value:.2f} vs {local.value:.3f} ms/step, {report.sizes.ray_steps}"
            f"-step sequence)"
        )
    return lines


def legend(sizes: Sizes) -> list[str]:
    """How to read the table, in a few lines."""
    return [
        "value: median over repeats; us/step = block wall time / steps executed (run set-up "
        "and the consumer's work included); tok/s, events/s = units / block time; "
        "KiB/run = (peak RSS - baseline) / runs, one fresh child process per system.",
        "vs floor: median of per-repeat (system time / floor time) for the same work "
        "(>1 = slower than the floor; tokens: floor = bare openai; ray: floor = bare Ray).",
        "stepstream speedup: median of per-repeat (peer time / stepstream time) "
        "(memory: peer KiB / stepstream KiB); on stepstream's tokens line, its tokens/s "
        "over bare openai's.  spread: (max - min) / median of the repeats.",
        f"sizes: seq {sizes.steps} steps, fanout {sizes.width} steps, {sizes.runs} runs per "
        f"block; tokens {sizes.tokens:,} x {sizes.streams} streams per block; "
        f"concurrent-1k {sizes.concurrent_1k:,} and "
        f"concurrent-10k {sizes.concurrent_10k:,} runs x {sizes.concurrent_steps} steps; "
        f"ray {sizes.ray_steps} steps x {sizes.ray_runs} runs, {sizes.ray_events:,} events; "
        f"{sizes.repeat} repeats.",
    ]


def peers_line() -> str:
    return f"systems: {STEPSTREAM}, {LANGGRAPH}, {LLAMA}, openai (tokens), floor"
