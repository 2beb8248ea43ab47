"""Durable runs from the command line: ``run --db`` suspends, ``resume``, ``runs``, ``show``."""

from __future__ import annotations

import json
from pathlib import Path

from .child import SAMPLES, cli


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
