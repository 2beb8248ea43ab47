"""What every benchmark script shares: statistics, the machine header, tables and profiles.

Used by the suite (``python -m benchmarks``) and by the single-purpose scripts
(``overhead.py``, ``token_relay.py``), so that every script describes the machine, takes
medians and prints profiles the same way.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.metadata
import os
import platform
import pstats
import re
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

# -- statistics -------------------------------------------------------------------------------


def median(values: Iterable[float]) -> float:
    """The median of ``values`` (which must not be empty)."""
    return float(statistics.median(values))


def spread(values: Sequence[float]) -> float:
    """(max - min) / median of ``values``: how noisy the repeats were (0.05 = 5 %)."""
    mid = median(values)
    return (max(values) - min(values)) / mid if mid else 0.0


def ratios(top: Sequence[float], bottom: Sequence[float]) -> list[float]:
    """Per-repeat ``top / bottom`` of two series measured side by side."""
    return [t / b for t, b in zip(top, bottom, strict=True)]


async def timed_ns(body: Callable[[], Awaitable[Any]]) -> int:
    """Nanoseconds one call of ``body`` takes, after a full collection."""
    gc.collect()
    t0 = time.perf_counter_ns()
    await body()
    return time.perf_counter_ns() - t0


# -- the machine ------------------------------------------------------------------------------


def _first(path: str, key: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or what ``platform`` knows."""
    return _first("/proc/cpuinfo", "model name") or platform.processor() or "unknown CPU"


def ram_gib() -> float | None:
    """Physical memory in GiB (``/proc/meminfo``), None where unknown."""
    total = _first("/proc/meminfo", "MemTotal")
    return int(total.split()[0]) / 1024 / 1024 if total else None


def version(package: str) -> str:
    """The installed version of ``package``, or ``-`` when it is not installed."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "-"


def machine_lines(packages: Sequence[str] = ()) -> list[str]:
    """Lines describing this machine and the versions of ``packages`` (stepstream first)."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    cores = f"{os.cpu_count()} cores" + (f" ({usable} usable)" if usable else "")
    ram = ram_gib()
    libs = ", ".join(f"{p} {version(p)}" for p in ("stepstream", *packages))
    return [
        f"machine: {cpu_model()}, {cores}, {f'{ram:.1f} GiB RAM' if ram else 'RAM unknown'}",
        f"python {platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.platform()}",
        f"versions: {libs}",
    ]


# -- memory -----------------------------------------------------------------------------------


def proc_status_kib(key: str) -> int:
    """One ``/proc/self/status`` field in KiB (``VmRSS``: now, ``VmHWM``: peak so far)."""
    value = _first("/proc/self/status", key + ":")
    if value is None:
        raise RuntimeError(f"/proc/self/status has no {key} (this needs Linux)")
    return int(value.split()[0])


# -- tables -----------------------------------------------------------------------------------


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    """An aligned plain-text table; columns whose index is in ``right`` are right-aligned."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        parts = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    """The same table in Markdown (pipes in cells escaped)."""

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    align = ["---:" if i in right else ":---" for i in range(len(header))]
    return "\n".join([line(header), "|" + "|".join(align) + "|", *(line(r) for r in rows)])


# -- profiles ---------------------------------------------------------------------------------


def _package(filename: str, own: str) -> str:
    """Which package a profiled function belongs to (C functions are ``builtins``)."""
    if filename.startswith("~") or filename.startswith("<built-in"):
        return "C builtins (any caller)"
    if filename.startswith(own):
        return "stepstream"
    found = re.search(r"site-packages[/\\]([A-Za-z0-9_]+)", filename)
    if found:
        return found.group(1)
    if re.search(r"[/\\]asyncio[/\\]", filename):
        return "asyncio"
    return "stdlib (any caller)"


def by_package(stats: pstats.Stats) -> list[tuple[str, float]]:
    """Own time (tottime) summed per package, largest first."""
    import stepstream

    own = os.path.dirname(stepstream.__file__)
    totals: dict[str, float] = {}
    raw: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    for (filename, _, _), (_, _, tottime, _, _) in raw.items():
        key = _package(filename, own)
        totals[key] = totals.get(key, 0.0) + tottime
    return sorted(totals.items(), key=lambda kv: -kv[1])


def print_profile(
    stats: pstats.Stats, *, per: int | None = None, unit: str = "", top: int = 25
) -> None:
    """Own time per package (per ``unit`` when ``per`` is given), then the top functions."""
    packages = by_package(stats)
    total = sum(tt for _, tt in packages) or 1.0
    if per:
        parts = ", ".join(
            f"{name} {tt * 1e6 / per:.2f} ({tt / total:.0%})" for name, tt in packages
        )
        print(f"own time per {unit} by package, us (profiled): {parts}")
    else:
        parts = ", ".join(f"{name} {tt * 1e3:.0f} ms ({tt / total:.0%})" for name, tt in packages)
        print(f"own time by package (profiled): {parts}")
    stats.stream = sys.stdout  # type: ignore[attr-defined]
    stats.strip_dirs().sort_stats("tottime").print_stats(top)


def run_async(main: Awaitable[Any]) -> Any:
    """Run ``main`` in a fresh default event loop (the same loop for every system)."""

    async def wrapper() -> Any:
        return await main

    with asyncio.Runner() as runner:
        return runner.run(wrapper())
