"""The benchmark suite still runs, and every system's runs pass their correctness checks.

Nothing here is about speed (timing targets are read by hand from the table): each system's
block checks its own runs (final status, streamed items, output), and a system that fails a
check is shown as ``FAILED`` in the table instead of timed, which this test refuses.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SYSTEMS = ("stepstream", "langgraph", "llama-index-workflows", "mastra", "floor")
QUICK = ["--quick", "--repeat", "1", "--only", "seq,fanout,plugins,tokens,concurrent-1k,durable"]
DURABLE = ("stepstream", "stepstream+sqlite", "langgraph+sqlite", "stepstream+postgres",
           "langgraph+postgres")  # fmt: skip


@pytest.mark.timeout(240)
def test_quick_suite_runs_every_system_without_a_failure() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", *QUICK],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        # Mastra from the @mastra/core the set-up installed for the client tests: no network.
        env={**os.environ, "STEPSTREAM_BENCH_MASTRA_DIR": str(ROOT / "tests/server/mastra_client")},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    table = done.stdout
    assert "FAILED" not in table, table
    for workload in ("seq", "fanout", "concurrent-1k"):
        for system in SYSTEMS:
            assert any(line.split()[:2] == [workload, system] for line in table.splitlines()), (
                f"no {workload} row for {system}:\n{table}"
            )
    for workload in ("durable-seq-10", "durable-seq-100", "durable-concurrent"):
        for system in DURABLE:
            assert any(line.split()[:2] == [workload, system] for line in table.splitlines()), (
                f"no {workload} row for {system}:\n{table}"
            )
    for system in ("stepstream", "no logger", "logger at INFO", "+metrics", "+jsonl"):
        row = re.compile(rf"plugins\s+{re.escape(system)}\s+us/event\s")
        assert any(row.match(line) for line in table.splitlines()), f"no plugins/{system}"
    assert "CPU per relayed token" in table
    assert "durable footprint" in table
    assert any(line.split()[:3] == ["tokens", "openai", "tok/s"] for line in table.splitlines())
    assert "KiB/run (RSS)" in table
    assert "targets:" in table


@pytest.mark.timeout(300)
def test_quick_server_and_studio_workloads_run_without_a_failure() -> None:
    # What benchmarks/server.py and studio.py measured, as suite workloads: the server in its
    # own process (with @mastra/client-js from the set-up's node_modules), the Studio in Chromium.
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--repeat", "1", "--only", "server,studio"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    table = done.stdout
    assert "FAILED" not in table, table
    lines = [line.split() for line in table.splitlines()]
    for workload, system in (
        ("server-events", "in-process"),
        ("server-events", "in-process+sqlite"),
        ("server-events", "http"),
        ("server-followers", "alone"),
        ("server-followers", "200"),  # "200 followers" (--quick)
        ("server-ttft", "http"),
        ("studio-assets", "studio"),
        ("studio-tokens", "studio"),
        ("studio-long", "studio"),
    ):
        assert any(line[:2] == [workload, system] for line in lines), f"no {workload}/{system}"
    assert any(line[:3] == ["server-events", "http", "(@mastra/client-js)"] for line in lines)
    assert "CPU us per event" in table
    for target in ("SSE followers", "first token over HTTP", "Studio: every token"):
        assert target in table, f"no target line for {target}"
