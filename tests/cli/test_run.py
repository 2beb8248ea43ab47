"""``stepstream run``: the live view, ``--json``, exit statuses and usage errors."""

from __future__ import annotations

import codecs
import fcntl
import json
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from stepstream.testing import FULL_TEXT, ModelServer, TextReply

from .child import ROOT, SAMPLES, LiveOutput, child_env, cli, cli_command


def test_run_shows_each_step_then_a_summary() -> None:
    done = cli("run", f"{SAMPLES}:two_steps", "--input", '{"n": 2}')
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("▶ two-steps · run ")
    order = ["● add-one …", "✓ add-one success in", "● double …", "✓ double success in"]
    found = [next(i for i, line in enumerate(lines) if line.startswith(o)) for o in order]
    assert found == sorted(found)
    summary = lines[found[-1] + 1 :]
    assert summary[0].startswith("■ success in ")
    assert json.loads("\n".join(summary[1:]).removeprefix("result: ")) == {"n": 6}
    assert done.stderr == ""


def test_json_prints_one_wire_event_per_line() -> None:
    # A .py file path works as well as a module path.
    done = cli("run", "tests/cli/sample_workflows.py:two_steps", "--input", '{"n": 2}', "--json")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert events[0]["type"] == "start" and events[-1]["type"] == "finish"
    results = [e["payload"] for e in events if e["type"] == "step-result"]
    assert [(r["id"], r["output"]) for r in results] == [
        ("add-one", {"n": 3}),
        ("double", {"n": 6}),
    ]


def test_a_failed_run_exits_1_with_its_error_shown_plainly() -> None:
    done = cli("run", f"{SAMPLES}:failing", "--input", '{"n": 2}')
    assert done.returncode == 1
    assert "✗ explode failed in " in done.stdout
    assert done.stdout.splitlines()[-1] == "error: ValueError: boom at 3"
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["two_steps", "--input", "{bad"], "--input: invalid JSON: Expecting property name"),
        (["two_steps", "--input", "@missing.json"], "--input: cannot read missing.json"),
        (["two_steps", "--runtime-context", "[1]"], "--runtime-context: expected a JSON object"),
        (["no_such"], "has no attribute 'no_such' (committed workflows: approval, "),
        (["not_a_workflow"], ":not_a_workflow is a int, not a Workflow"),
        (["not_committed"], ":not_committed is not committed (call .commit() on it)"),
    ],
)
def test_usage_errors_exit_2_with_one_line(args: list[str], message: str) -> None:
    done = cli("run", f"{SAMPLES}:{args[0]}", *args[1:])
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith("stepstream: error: ") and message in done.stderr
    assert len(done.stderr.splitlines()) == 1


def test_an_unknown_module_exits_2() -> None:
    done = cli("run", "no_such_module:flow")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "stepstream: error: no module named 'no_such_module'\n"


def test_an_agent_answer_streams_into_the_view(model_server: ModelServer) -> None:
    env = child_env(OPENAI_BASE_URL=model_server.base_url, OPENAI_API_KEY="local")
    done = cli("run", "tests.cli.agent_workflow", "--input", '{"topic": "rain"}', env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    answer = lines.index("  Writer is answering:")
    assert lines[answer + 1] == f"  │ {FULL_TEXT}"
    assert lines[answer + 2].startswith("✓ Writer success in ")


def _waiting_run(flag: Path) -> list[str]:
    """The CLI running a workflow whose second step blocks until ``flag`` exists."""
    args = ["run", f"{SAMPLES}:waits_for_file", "--input", json.dumps({"path": str(flag)})]
    return cli_command(*args)


def _see_it_live(proc: subprocess.Popen[str], out: LiveOutput, flag: Path, running: str) -> None:
    """The first step's end and ``running`` (the second step) show while the run still waits
    for ``flag``; once it exists, the run ends."""
    out.wait_for("✓ first success in ")
    out.wait_for(running)
    assert proc.poll() is None
    flag.touch()
    rest = out.wait_end()
    assert proc.wait(timeout=15) == 0
    assert "✓ second success in " in rest and "■ success in " in rest


def test_the_view_is_live_through_a_pipe(tmp_path: Path) -> None:
    flag = tmp_path / "go"
    proc = subprocess.Popen(
        _waiting_run(flag), cwd=ROOT, env=child_env(), text=True, stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    try:
        _see_it_live(proc, LiveOutput(proc.stdout.readline), flag, "● second …")
    finally:
        proc.kill()
        proc.communicate()


def test_the_view_is_live_on_a_terminal(tmp_path: Path) -> None:
    flag = tmp_path / "go"
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    env = child_env(TERM="xterm-256color")
    proc = subprocess.Popen(
        _waiting_run(flag), cwd=ROOT, env=env, stdout=slave, stderr=slave, text=True
    )
    os.close(slave)
    try:
        utf8 = codecs.getincrementaldecoder("utf-8")()  # a chunk may end inside a "✓"
        out = LiveOutput(lambda: utf8.decode(os.read(master, 65536)))
        # "first" is printed for good above rich's live region, which shows "second" running.
        _see_it_live(proc, out, flag, "second")
    finally:
        proc.kill()
        proc.wait()
        os.close(master)


def test_a_wait_for_an_event_nothing_can_send_says_so_and_how_to_go_on(tmp_path: Path) -> None:
    # In memory the run waits in place, as Mastra's does; this command alone holds it.
    args = cli_command("run", f"{SAMPLES}:event_wait", "--input", '{"n": 1}')
    proc = subprocess.Popen(args, cwd=ROOT, env=child_env(), text=True, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    try:
        out = LiveOutput(proc.stdout.readline)
        out.wait_for("● double (waiting) …")
        note = out.wait_for("or stop it with Ctrl-C")
        assert "step 'double' waits for event 'go': this run is kept in memory" in note
        assert f"stepstream resume {SAMPLES}:event_wait RUN_ID --step double" in note
        assert proc.poll() is None  # still waiting, as told
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 130
    finally:
        proc.kill()
        proc.communicate()
    # Durable, the run suspends at the step instead, and the hint says how to resume it.
    done = cli(
        "run", f"{SAMPLES}:event_wait", "--input", '{"n": 1}', "--db", str(tmp_path / "r.db")
    )
    assert done.returncode == 0, done.stderr
    assert "waits for event" not in done.stdout
    assert "⏸ double suspended" in done.stdout and "--step double --data JSON" in done.stdout


def test_without_rich_the_cli_says_what_to_install() -> None:
    code = "import sys; sys.modules['rich'] = None; from stepstream.cli import main; "
    done = subprocess.run(
        [sys.executable, "-c", code + "sys.exit(main(['plugins']))"],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "pip install 'stepstream[cli]'" in done.stderr


def test_agent_text_shows_token_by_token_before_the_answer_ends(
    model_server: ModelServer,
) -> None:
    """The model sends its first words, then waits until the test has seen them in the CLI's
    output: the text is on screen while the answer is still being written."""
    seen_first = threading.Event()

    def words() -> Iterator[str]:
        yield "Rain"
        yield "coats"
        seen_first.wait(30)  # held back until the test saw the first words live
        yield " and tea."

    model_server.responder = lambda body: TextReply(words())
    env = child_env(OPENAI_BASE_URL=model_server.base_url, OPENAI_API_KEY="local")
    args = cli_command("run", "tests.cli.agent_workflow", "--input", '{"topic": "rain"}')
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    decode = codecs.getincrementaldecoder("utf-8")()
    try:
        out = LiveOutput(lambda: decode.decode(os.read(fd, 65536)))
        out.wait_for("│ Raincoats")
        assert proc.poll() is None and "and tea" not in out.plain
        seen_first.set()
        rest = out.wait_end()
        assert proc.wait(timeout=15) == 0
        assert "│ Raincoats and tea." in out.plain + rest
    finally:
        seen_first.set()
        proc.kill()
        proc.communicate()
