"""The suite's output: the table (plain or Markdown), the targets and the notes below it."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._common import markdown_table, text_table
from ._suite import HEADER, RIGHT, STEPSTREAM, Row, find
from ._workloads import GC_TUNED, LANGGRAPH, LLAMA, MASTRA, Sizes

FLOOR_RATIO = {"seq": 2.5, "concurrent-10k": 3.0}
PEER_SPEEDUP = {("seq", LANGGRAPH): 15.0, ("seq", MASTRA): 8.0, ("fanout", LANGGRAPH): 10.0}
DURABLE_SPEEDUP = 10.0  # over langgraph+sqlite, durable-seq-100
TOKEN_RATIO = 1.5
KIB_PER_RUN = 16.0
RAY_EVENTS_PER_S = 1000.0
LINEAR = 1.3
DURABLE_VS_MEMORY = 3.0
DURABLE_RUNS_PER_S = {"sqlite": 3000.0, "postgres": 1500.0}
FOLLOWERS_RATIO = 1.2  # a run's duration with 1,000 SSE followers / alone
FOLLOWERS_MIB = 50.0  # the server's RSS growth while they follow
TTFT_MS = 5.0  # time to first token over HTTP minus in process
STUDIO_TOKEN_MS = 50.0  # every token from the model's send to the screen
STUDIO_TASK_MS = 100.0  # the page's longest task while it takes a long run
STUDIO_KB = 300.0  # the Studio's files, gzipped
STUDIO_PAINT_MS = 500.0  # first contentful paint of /


@dataclass
class Report:
    """Everything measured, gathered while the suite runs."""

    sizes: Sizes
    rows: list[Row] = field(default_factory=list)
    memory: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    selected: Sequence[str] = ()
    footprint: dict[str, float] = field(default_factory=dict)
    """Bytes per step of one durable run of ``footprint_steps`` steps, per durable system."""
    footprint_steps: int = 0
    extra_notes: list[str] = field(default_factory=list)
    """Lines for the notes measured along a workload (CPU per token, GC settings)."""

    def table(self, markdown: bool) -> str:
        cells = [row.cells() for row in self.rows]
        if markdown:
            return markdown_table(HEADER, cells, RIGHT)
        return text_table(HEADER, cells, RIGHT)


def _measured(row: Row | None, attr: str = "value") -> float | None:
    """``row``'s figure ``attr``, or ``None`` when the row is missing, failed or lacks it."""
    if row is None or math.isnan(row.value):
        return None
    value = getattr(row, attr)
    return None if value is None else float(value)


def _target(
    label: str,
    value: float | None,
    shown: str,
    met: Callable[[float], bool],
    missing: str = "not measured",
) -> str:
    """``label: <value shown> <verdict>``; ``shown`` is a format string for the value."""
    if value is None:
        return f"{label}: {missing}  n/a"
    return f"{label}: {shown.format(value)}  {'met' if met(value) else 'NOT met'}"


def targets(report: Report) -> list[str]:
    """One line per target: what was measured and whether it is met."""
    t, sizes, lines = report.rows, report.sizes, []
    for name, most in FLOOR_RATIO.items():
        if name in report.selected:
            for system in (STEPSTREAM, GC_TUNED) if name == "concurrent-10k" else (STEPSTREAM,):
                ratio = _measured(find(t, name, system, "us/step"), "vs_floor")
                if ratio is None and system == GC_TUNED:
                    continue
                lines.append(
                    _target(
                        f"per step within {most:g}x the floor, {name} ({system})",
                        ratio,
                        "{:.2f}x",
                        lambda v, most=most: v <= most,
                    )
                )
    for (name, peer), least in PEER_SPEEDUP.items():
        if name in report.selected:
            lines.append(
                _target(
                    f">= {least:g}x faster than {peer}, {name}",
                    _measured(find(t, name, peer, "us/step"), "speedup"),
                    "{:.1f}x",
                    lambda v, least=least: v >= least,
                )
            )
    if "tokens" in report.selected:
        lines.append(
            _target(
                f"token relay >= {TOKEN_RATIO}x the bare openai client's tokens/s",
                _measured(find(t, "tokens", STEPSTREAM, "tok/s"), "speedup"),
                "{:.2f}x",
                lambda v: v >= TOKEN_RATIO,
            )
        )
    if "concurrent-10k" in report.selected:
        runs = sizes.concurrent_10k
        scaled = "" if runs == 10_000 else f" (measured at {runs:,} runs: --quick)"
        lines.append(
            _target(
                f"10,000 concurrent streamed runs under {KIB_PER_RUN:.0f} KiB RSS per run{scaled}",
                _measured(find(t, "concurrent-10k", STEPSTREAM, "KiB/run")),
                "{:.1f} KiB",
                lambda v: v < KIB_PER_RUN,
            )
        )
    if "durable" in report.selected:
        lines += durable_targets(report)
    if "server" in report.selected:
        lines += server_targets(report)
    if "studio" in report.selected:
        lines += studio_targets(report)
    if "ray" in report.selected:
        lines.append(
            _target(
                "Ray: remote events reach the driver in order at thousands per second",
                _measured(find(t, "ray", "stepstream+ray", "events/s")),
                f"{{:,.0f}} events/s, all {sizes.ray_events:,} in order in every repeat",
                lambda v: v >= RAY_EVENTS_PER_S,
                missing="FAILED (see notes: out of order, missing or not run)",
            )
        )
    return lines


def durable_targets(report: Report) -> list[str]:
    """The durable workload's targets: linear cost, SQLite against LangGraph and the in-memory
    engine, concurrent runs per second on each backend."""
    t, sizes, lines = report.rows, report.sizes, []
    short, long = min(sizes.durable_steps), max(sizes.durable_steps)
    for backend in ("sqlite", "postgres"):
        system = f"stepstream+{backend}"
        first = _measured(find(t, f"durable-seq-{short}", system, "us/step"))
        last = _measured(find(t, f"durable-seq-{long}", system, "us/step"))
        lines.append(
            _target(
                f"linear, {backend}: us/step at n={long} within {LINEAR}x of n={short}",
                None if first is None or last is None else last / first,
                "{:.2f}x",
                lambda v: v <= LINEAR,
            )
        )
    if 100 in sizes.durable_steps:
        lines.append(
            _target(
                f">= {DURABLE_SPEEDUP:.0f}x faster than langgraph+sqlite, durable-seq-100",
                _measured(find(t, "durable-seq-100", "langgraph+sqlite", "us/step"), "speedup"),
                "{:.1f}x",
                lambda v: v >= DURABLE_SPEEDUP,
            )
        )
        lines.append(
            _target(
                f"stepstream+sqlite within {DURABLE_VS_MEMORY:.0f}x of the in-memory engine, "
                "durable-seq-100",
                _measured(find(t, "durable-seq-100", "stepstream+sqlite", "us/step"), "vs_floor"),
                "{:.2f}x",
                lambda v: v <= DURABLE_VS_MEMORY,
            )
        )
    runs = sizes.durable_concurrent
    scaled = "" if runs == 1000 else f" (measured at {runs:,} runs: --quick)"
    for backend, goal in DURABLE_RUNS_PER_S.items():
        lines.append(
            _target(
                f"1,000 concurrent 3-step durable runs on {backend} >= {goal:,.0f} runs/s{scaled}",
                _measured(find(t, "durable-concurrent", f"stepstream+{backend}", "runs/s")),
                "{:,.0f} runs/s",
                lambda v, goal=goal: v >= goal,
            )
        )
    return lines


def server_targets(report: Report) -> list[str]:
    """Issue 15's server targets: SSE followers that do not slow a run nor swell the server,
    the first token over HTTP close behind the one in process."""
    t, n = report.rows, report.sizes.server_followers
    scaled = "" if n == 1000 else f" (measured with {n:,}: --quick)"
    followed = find(t, "server-followers", f"{n:,} followers", "ms/run")
    growth = find(t, "server-followers", f"{n:,} followers", "MiB")
    local = _measured(find(t, "server-ttft", "in-process", "ms"))
    http = _measured(find(t, "server-ttft", "http", "ms"))
    return [
        _target(
            f"1,000 SSE followers: the run within {FOLLOWERS_RATIO}x of alone{scaled}",
            _measured(followed, "vs_floor"),
            "{:.2f}x",
            lambda v: v <= FOLLOWERS_RATIO,
        ),
        _target(
            f"1,000 SSE followers: server RSS growth under {FOLLOWERS_MIB:.0f} MiB{scaled}",
            _measured(growth),
            "{:.1f} MiB",
            lambda v: v < FOLLOWERS_MIB,
        ),
        _target(
            f"time to first token over HTTP within {TTFT_MS:g} ms of in process",
            None if local is None or http is None else http - local,
            "{:+.2f} ms",
            lambda v: v <= TTFT_MS,
        ),
    ]


def studio_targets(report: Report) -> list[str]:
    """The Studio's targets: tokens on screen, long tasks, assets, first paint."""
    t = report.rows
    return [
        _target(
            f"Studio: every token on screen under {STUDIO_TOKEN_MS:g} ms",
            _measured(find(t, "studio-tokens", "studio", "ms max")),
            "{:.1f} ms at most",
            lambda v: v < STUDIO_TOKEN_MS,
        ),
        _target(
            f"Studio: no task over {STUDIO_TASK_MS:g} ms under a long run",
            _measured(find(t, "studio-long", "studio", "ms longest")),
            "{:.0f} ms longest",
            lambda v: v <= STUDIO_TASK_MS,
        ),
        _target(
            f"Studio: files under {STUDIO_KB:g} KB gzipped",
            _measured(find(t, "studio-assets", "studio", "KB")),
            "{:.1f} KB",
            lambda v: v < STUDIO_KB,
        ),
        _target(
            f"Studio: first paint under {STUDIO_PAINT_MS:g} ms",
            _measured(find(t, "studio-assets", "studio", "ms first paint")),
            "{:.0f} ms",
            lambda v: v < STUDIO_PAINT_MS,
        ),
    ]


def notes(report: Report) -> list[str]:
    """Failures, the memory children's raw numbers, the Ray overhead per step."""
    lines = [f"FAILED {r.workload} / {r.system}: {r.note}" for r in report.rows if r.note]
    lines += [line for line in report.extra_notes if line]
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
    if report.footprint:
        sizes = ", ".join(f"{system} {b:,.0f}" for system, b in report.footprint.items())
        lines.append(
            f"durable footprint (bytes per step of one {report.footprint_steps}-step run, the "
            f"sum of its rows' sizes): {sizes}"
        )
    remote = _measured(find(report.rows, "ray", "stepstream+ray", "ms/step"))
    local = _measured(find(report.rows, "ray", STEPSTREAM, "ms/step"))
    if remote is not None and local is not None:
        lines.append(
            f"ray: a remote step costs {remote - local:.2f} ms more than a local one "
            f"({remote:.2f} vs {local:.3f} ms/step, {report.sizes.ray_steps}-step sequence)"
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
        f"durable-seq-N {', '.join(map(str, sizes.durable_steps))} steps x "
        f"{', '.join(map(str, sizes.durable_runs))} runs per block, durable-concurrent "
        f"{sizes.durable_concurrent:,} runs x {sizes.concurrent_steps} steps; "
        f"server {sizes.server_writes:,} events per run, {sizes.server_followers:,} followers "
        f"of {sizes.server_chatty:,} writes, ttft over {sizes.server_tokens} tokens; studio "
        f"{sizes.studio_tokens:,} tokens, {sizes.studio_events:,} events; "
        f"{sizes.repeat} repeats.",
    ]


def peers_line() -> str:
    return (
        f"systems: {STEPSTREAM}, {LANGGRAPH}, {LLAMA}, {MASTRA} (@mastra/core 0.10.15 on "
        "Node), openai (tokens), floor; durable: "
        "stepstream+sqlite, stepstream+postgres, langgraph+sqlite (AsyncSqliteSaver), "
        "langgraph+postgres (AsyncPostgresSaver), against the in-memory stepstream"
    )
