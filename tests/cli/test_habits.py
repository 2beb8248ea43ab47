"""The command line behaves as Python users expect: --version, python -m, closed pipes, plain
output when piped, --json for runs, --db as a SQLite path or a PostgreSQL DSN, map steps by
position, the right resume hint for a workflow with its own storage, quiet Ctrl-C."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import stepstream
from stepstream.testing import ModelServer, StallReply

from .child import ROOT, SAMPLES, LiveOutput, child_env, cli

BOX = set("┃━│─┏┓┗┛┡┩└┘╇╋")


def test_version_from_the_command_and_from_python_m() -> None:
    expected = f"stepstream {version('stepstream')}\n"
    assert stepstream.__version__ == version("stepstream")
    assert cli("--version").stdout == expected
    as_module = subprocess.run(
        [sys.executable, "-m", "stepstream", "--version"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (as_module.returncode, as_module.stdout) == (0, expected)


def _head(command: list[str], lines: int) -> tuple[list[str], subprocess.CompletedProcess[str]]:
    """Read ``lines`` lines of the command's output, then close the pipe, as ``| head`` does."""
    with subprocess.Popen(
        command, cwd=ROOT, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    ) as child:  # fmt: skip
        assert child.stdout is not None and child.stderr is not None
        read = [child.stdout.readline() for _ in range(lines)]
        child.stdout.close()
        stderr = child.stderr.read()
        code = child.wait(timeout=30)
    return read, subprocess.CompletedProcess(command, code, "", stderr)


def test_a_closed_pipe_ends_the_run_quietly() -> None:
    # 5,000 step-output lines are far more than a pipe holds: the writes must meet the close.
    for mode in (["--json"], []):
        command = [sys.executable, "-m", "stepstream", "run", f"{SAMPLES}:chatty"]
        read, done = _head([*command, "--input", '{"n": 5000}', *mode], 2)
        assert len(read) == 2 and all(line.endswith("\n") for line in read)
        assert done.returncode == 141, done.stderr
        assert done.stderr == ""


def test_the_weather_example_ends_quietly_on_a_closed_pipe() -> None:
    read, done = _head([sys.executable, "examples/weather.py", "--json"], 2)
    assert json.loads(read[0])["type"] == "start"
    assert done.returncode == 141
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr


def test_the_weather_example_ends_quietly_on_ctrl_c() -> None:
    # The model streams a first chunk and then holds the answer open, so Ctrl-C surely lands
    # while the agent is answering (a whole answer takes a moment and could end first).
    with ModelServer(lambda request: StallReply(chunks=["Plan:\n"])) as stalling, subprocess.Popen(
        [sys.executable, "examples/weather.py"], cwd=ROOT,
        env=child_env(OPENAI_API_KEY="test-key", OPENAI_BASE_URL=stalling.base_url),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as child:  # fmt: skip
        assert child.stdout is not None and child.stderr is not None
        output = LiveOutput(child.stdout.readline)
        output.wait_for("Plan:")  # the agent is streaming its (stalled) answer
        child.send_signal(signal.SIGINT)
        stderr = child.stderr.read()
        assert child.wait(timeout=30) == 130
        output.wait_end()
    # The logger plugin may report the canceled step first; no traceback either way.
    assert stderr.endswith("interrupted\n")
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr


def _stored_run(db: str) -> str:
    started = cli("run", f"{SAMPLES}:approval", "--input", '{"item": "tea"}', "--db", db)
    assert started.returncode == 0, started.stderr
    return started.stdout.splitlines()[0].removeprefix("run id: ").split()[0]


def test_runs_and_show_print_plain_columns_when_piped(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    run_id = _stored_run(db)
    listed = cli("runs", "--db", db)
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split("\t") == ["run id", "workflow", "status", "updated"]
    assert row.split("\t")[:3] == [run_id, "approval", "suspended"]
    shown = cli("show", run_id, "--db", db)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith(f"run {run_id} · workflow approval · suspended · updated ")
    assert "step\tstatus\ttook\ttokens\toutput / error" in lines
    assert any(line.startswith("approve\tsuspended\t") for line in lines)
    assert "seq\tevent\tdetail" in lines
    assert not BOX & set(listed.stdout + shown.stdout)


def test_runs_json_prints_one_object_per_run(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    first, second = _stored_run(db), _stored_run(db)
    done = cli("runs", "--db", db, "--json")
    assert done.returncode == 0, done.stderr
    found = [json.loads(line) for line in done.stdout.splitlines()]
    assert {r["run_id"] for r in found} == {first, second}
    assert set(found[0]) == {"run_id", "workflow_id", "status", "updated_at"}
    assert {r["status"] for r in found} == {"suspended"}
    assert cli("runs", "--db", db, "--json", "--status", "success").stdout == ""


def test_db_takes_a_postgresql_dsn(postgres_dsn: str) -> None:
    # The throwaway server trusts every local connection, so any password is accepted.
    dsn = postgres_dsn.replace("postgres@", "postgres:hunter2@")
    target = f"{SAMPLES}:approval"
    started = cli("run", target, "--input", '{"item": "tea"}', "--db", dsn)
    assert started.returncode == 0, started.stderr
    run_id = started.stdout.splitlines()[0].removeprefix("run id: ").split()[0]
    assert "hunter2" not in started.stdout and "postgres:***@" in started.stdout
    assert run_id in cli("runs", "--db", dsn).stdout
    resumed = cli("resume", target, run_id, "--data", '{"approved": true}', "--db", dsn)
    assert resumed.returncode == 0, resumed.stderr
    shown = json.loads(cli("show", run_id, "--db", dsn, "--json").stdout)
    assert shown["snapshot"]["status"] == "success"
    assert shown["snapshot"]["result"] == {"approved": True}


def test_map_steps_are_shown_as_map_with_their_position(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    done = cli("run", f"{SAMPLES}:mapped", "--input", '{"n": 1}', "--db", db)
    assert done.returncode == 0, done.stderr
    assert "mapping_" not in done.stdout
    steps = [line.split()[1:3] for line in done.stdout.splitlines() if line.startswith("✓")]
    assert steps == [["add-one", "success"], ["map", "#2"], ["double", "success"], ["map", "#4"]]
    run_id = done.stdout.splitlines()[0].removeprefix("run id: ").split()[0]
    shown = cli("show", run_id, "--db", db).stdout
    assert "mapping_" not in shown
    assert any(line.startswith("map #2\tsuccess\t") for line in shown.splitlines())


def test_a_workflow_with_its_own_storage_is_not_said_to_be_in_memory(tmp_path: Path) -> None:
    env = child_env(SAMPLE_DB=str(tmp_path / "own.db"))
    target = f"{SAMPLES}:stored_approval"
    started = cli("run", target, "--input", '{"item": "tea"}', env=env)
    assert started.returncode == 0, started.stderr
    assert "in memory only" not in started.stdout
    lines = started.stdout.splitlines()
    run_id = lines[0].removeprefix("run id: ").split()[0]
    assert lines[0] == f"run id: {run_id} (stored in the workflow's storage)"
    hint = f"resume with: stepstream resume {target} {run_id} --step approve --data JSON"
    assert lines[-1] == hint
    resumed = cli("resume", target, run_id, "--data", '{"approved": 1}', env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert '"approved": true' in resumed.stdout


def test_resume_without_db_or_own_storage_is_a_usage_error() -> None:
    done = cli("resume", f"{SAMPLES}:approval", "some-run", "--data", "{}")
    assert done.returncode == 2
    assert done.stderr == (
        "stepstream: error: --db is needed: workflow 'approval' has no storage of its own\n"
    )


def test_a_db_that_is_not_a_database_or_not_reachable_is_a_usage_error(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n")
    done = cli("runs", "--db", str(text))
    assert done.returncode == 2
    assert done.stderr == "stepstream: error: --db: file is not a database\n"
    assert text.read_text() == "not a database\n"  # nothing lost
    with socket.socket() as s:  # a port of 127.0.0.1 nobody listens on (once closed)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = cli("show", "some-run", "--db", f"postgresql://me:secret@127.0.0.1:{port}/runs")
    assert done.returncode == 2
    assert done.stderr.startswith("stepstream: error: --db: connection failed: ")
    assert len(done.stderr.splitlines()) == 1 and "secret" not in done.stderr
