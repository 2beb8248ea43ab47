"""Durable runs from the command line: ``run --db`` suspends, ``resume``, ``runs``, ``show``."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from .child import ROOT, SAMPLES, LiveOutput, child_env, cli, cli_command


def test_suspend_then_resume_then_list_and_show(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    target = f"{SAMPLES}:approval"
    started = cli("run", target, "--input", '{"item": "invoice-42"}', "--db", db)
    assert started.returncode == 0, started.stderr
    lines = started.stdout.splitlines()
    run_id = lines[0].removeprefix("run id: ").split()[0]
    assert '  wrote {"prepared":"invoice-42"}' in lines
    assert any(line.startswith("⏸ approve suspended after ") for line in lines)
    assert lines[-2:] == [
        "suspended at approve",
        f"resume with: stepstream resume {target} {run_id} --step approve --data JSON --db {db}",
    ]

    listed = cli("runs", "--db", db, "--status", "suspended")
    assert listed.returncode == 0 and run_id in listed.stdout and "approval" in listed.stdout

    resumed = cli(
        "resume", target, run_id, "--step", "approve", "--data", '{"approved": true}', "--db", db
    )
    assert resumed.returncode == 0, resumed.stderr
    lines = resumed.stdout.splitlines()
    assert lines[:2] == [f"▶ resuming approval · run {run_id} at approve", "● approve (resumed) …"]
    assert lines[2].startswith("✓ approve success in ")
    assert lines[3].startswith("■ success in ") and '"approved": true' in resumed.stdout

    shown = cli("show", run_id, "--db", db)
    assert shown.returncode == 0, shown.stderr
    assert f"run {run_id} · workflow approval · success" in shown.stdout
    assert "step-suspended" in shown.stdout and "approve (resumed)" in shown.stdout

    as_json = json.loads(cli("show", run_id, "--db", db, "--json").stdout)
    assert as_json["snapshot"]["status"] == "success"
    assert as_json["snapshot"]["result"] == {"approved": True}
    types = [e["type"] for e in as_json["events"]]
    assert types[0] == "start" and types[-1] == "finish" and types.count("start") == 1

    again = cli("resume", target, run_id, "--data", "{}", "--db", db)
    assert again.returncode == 2
    assert "has ended (success)" in again.stderr


def test_reading_commands_need_an_existing_database_and_run(tmp_path: Path) -> None:
    missing = str(tmp_path / "none.db")
    done = cli("runs", "--db", missing)
    assert (done.returncode, done.stderr) == (2, f"stepstream: error: no database at {missing}\n")
    assert not Path(missing).exists()
    empty = tmp_path / "empty.db"
    empty.touch()
    done = cli("show", "nope", "--db", str(empty))
    assert (done.returncode, done.stderr) == (2, f"stepstream: error: run nope is not in {empty}\n")
    assert cli("runs", "--db", str(empty)).stdout == "no runs\n"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_leaves_a_durable_run_interrupted_and_resumable(
    tmp_path: Path, sig: signal.Signals
) -> None:
    db, flag = str(tmp_path / "runs.db"), tmp_path / "go"
    target = f"{SAMPLES}:held"
    args = ["run", target, "--input", json.dumps({"path": str(flag)}), "--db", db]
    proc = subprocess.Popen(
        cli_command(*args), cwd=ROOT, env=child_env(), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        out = LiveOutput(proc.stdout.readline)
        out.wait_for("● hold …")
        proc.send_signal(sig)
        rest = out.wait_end()
        assert proc.wait(timeout=15) == 130
    finally:
        proc.kill()
        proc.communicate()
    run_id = rest.splitlines()[0].removeprefix("run id: ").split()[0]
    assert f"interrupted: run {run_id} is stored as interrupted" in rest
    assert f"stepstream resume {target} {run_id} --db {db}" in rest

    listed = cli("runs", "--db", db, "--status", "interrupted", "--json")
    assert [json.loads(line)["run_id"] for line in listed.stdout.splitlines()] == [run_id]
    flag.touch()
    resumed = cli("resume", target, run_id, "--db", db)
    assert resumed.returncode == 0, resumed.stderr
    assert "■ success in " in resumed.stdout
    assert "✓ first" not in resumed.stdout  # finished before the signal: not run again
    shown = cli("show", run_id, "--db", db, "--json")
    assert json.loads(shown.stdout)["snapshot"]["status"] == "success"


def test_a_killed_run_is_listed_interrupted_and_runs_prune(tmp_path: Path) -> None:
    db, flag = str(tmp_path / "runs.db"), tmp_path / "go"
    args = ["run", f"{SAMPLES}:held", "--input", json.dumps({"path": str(flag)}), "--db", db]
    proc = subprocess.Popen(
        cli_command(*args), cwd=ROOT, env=child_env(), text=True, stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    try:
        LiveOutput(proc.stdout.readline).wait_for("● hold …")
    finally:
        proc.kill()  # SIGKILL: nothing is said, the owner is just gone
        proc.communicate()
    listed = cli("runs", "--db", db, "--json")
    [killed] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert killed["status"] == "interrupted"
    finished = cli("run", f"{SAMPLES}:two_steps", "--input", '{"n": 1}', "--db", db)
    assert finished.returncode == 0, finished.stderr

    kept = cli("runs", "prune", "--db", db, "--older-than", "1d")
    assert kept.returncode == 0 and kept.stdout.startswith("deleted 0 runs")
    pruned = cli("runs", "prune", "--db", db, "--older-than", "0")
    assert pruned.returncode == 0 and pruned.stdout.startswith("deleted 1 run ")
    left = cli("runs", "--db", db, "--json")
    assert [json.loads(line)["run_id"] for line in left.stdout.splitlines()] == [killed["run_id"]]
    bad = cli("runs", "prune", "--db", db, "--older-than", "soon")
    assert bad.returncode == 2 and "--older-than" in bad.stderr
