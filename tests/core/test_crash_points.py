"""Fault injection, as DBOS tests it: a child process is SIGKILLed at a named storage write
(``STEPSTREAM_CRASH_AT``), then the run is recovered; and real processes race to claim one run.
On both backends.

After every crash and recovery: the result is right, every step whose completion was stored ran
once, the log is gap-free and equal to a replay, and every event a consumer was shown before the
crash is in the log under the same seq, unchanged.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stepstream import get_plugin_manager

from .crash_child import five_steps, open_storage

ROOT = Path(__file__).resolve().parents[2]
STEPS = ["s1", "s2", "s3", "s4", "s5"]


@pytest.fixture(params=["sqlite", "postgres"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """``(backend, target)`` of a store of this test's own."""
    if request.param == "sqlite":
        yield "sqlite", str(tmp_path / "runs.db")
    else:
        dsn: str = request.getfixturevalue("postgres_dsn")
        yield "postgres", f"{dsn}|test_{uuid.uuid4().hex}"


def child(mode: str, where: tuple[str, str], marks: Path, run_id: str, *,
          crash: str | None = None, durability: str = "sync") -> subprocess.Popen[str]:  # fmt: skip
    env = dict(os.environ)
    env.pop("STEPSTREAM_CRASH_AT", None)
    if crash is not None:
        env["STEPSTREAM_CRASH_AT"] = crash
    return subprocess.Popen(
        [sys.executable, "-m", "tests.core.crash_child", mode, *where, str(marks), run_id,
         durability],
        cwd=ROOT, env=env, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def crashed(proc: subprocess.Popen[str]) -> list[dict[str, Any]]:
    """Wait for the child to be killed at its crash point; what its consumer was shown."""
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"not killed ({proc.returncode}): {err}"
    return [json.loads(line) for line in out.splitlines()]


def done(marks: Path) -> list[str]:
    path = marks / "done.txt"
    return path.read_text().split() if path.exists() else []


async def recover_and_check(
    where: tuple[str, str],
    marks: Path,
    run_id: str,
    seen: list[dict[str, Any]],
    durability: str = "sync",
) -> None:
    store = open_storage(*where, "sync")
    try:
        before = await store.read_events(run_id)
        logged = {e.seq: e.wire for e in before}
        for shown in seen:  # shown live, so stored (before the crash)
            assert logged[shown["seq"]] == shown["wire"]
        completed = {e.wire["payload"]["id"] for e in before if e.type == "step-result"}
        wf = five_steps(marks)
        pm = get_plugin_manager(load_entrypoints=False)
        run = await wf.load_run(run_id, storage=store, plugin_manager=pm)
        assert run.status == "interrupted"
        stream = run.stream(after_seq=-1)
        task = asyncio.create_task(run.resume())
        replayed = [e async for e in stream]
        result = await task
        assert result.status == "success" and result.result == {"n": 5}
        log = await store.read_events(run_id)
        assert [e.seq for e in log] == list(range(len(log)))  # no gap, no seq reused
        assert [e.to_wire() for e in replayed] == [e.wire for e in log]
        for shown in seen:  # no seq was shown with other content
            assert log[shown["seq"]].wire == shown["wire"]
        ran = done(marks)
        assert sorted(set(ran)) == STEPS
        for step_id in completed:
            assert ran.count(step_id) == 1, f"{step_id} ran again after it was stored"
        if durability == "sync":  # each step waited for its checkpoint
            assert sum(ran.count(s) - 1 for s in STEPS) <= 1  # only the step in flight re-ran
        stored = await store.load_run(run_id)
        assert stored is not None and stored.status == "success" and stored.owner is None
        assert list(stored.state["steps"]) == STEPS
    finally:
        await store.close()


POINTS = [
    ("claim.after-commit", "sync"),
    ("checkpoint.before-commit:1", "sync"),
    ("checkpoint.before-commit:3", "sync"),
    ("checkpoint.after-commit:1", "sync"),
    ("checkpoint.after-commit:3", "sync"),
    ("checkpoint.before-commit:1", "async"),
]


@pytest.mark.parametrize(("point", "durability"), POINTS, ids=[f"{p}-{d}" for p, d in POINTS])
@pytest.mark.asyncio
async def test_a_crash_at_a_storage_write_then_recovery(
    where: tuple[str, str], tmp_path: Path, point: str, durability: str
) -> None:
    run_id = str(uuid.uuid4())
    seen = crashed(child("run", where, tmp_path, run_id, crash=point, durability=durability))
    await recover_and_check(where, tmp_path, run_id, seen, durability)


@pytest.mark.asyncio
async def test_a_crash_before_the_run_starts_leaves_it_pending(
    where: tuple[str, str], tmp_path: Path
) -> None:
    run_id = str(uuid.uuid4())
    assert crashed(child("run", where, tmp_path, run_id, crash="claim.before-commit")) == []
    store = open_storage(*where, "sync")
    try:
        stored = await store.load_run(run_id)  # as create_run() stored it, nothing more
        assert stored is not None and (stored.status, stored.last_seq) == ("pending", -1)
        assert await store.read_events(run_id) == []
        assert done(tmp_path) == []
    finally:
        await store.close()


@pytest.mark.asyncio
async def test_a_crash_during_recovery_then_recovery_again(
    where: tuple[str, str], tmp_path: Path
) -> None:
    run_id = str(uuid.uuid4())
    seen = crashed(child("run", where, tmp_path, run_id, crash="checkpoint.after-commit:2"))
    recoverer = child("recover", where, tmp_path, run_id, crash="recovery.after-claim")
    assert recoverer.stdout is not None and recoverer.stdout.readline().strip() == "ready"
    recoverer.communicate("go\n", timeout=60)
    assert recoverer.returncode == -signal.SIGKILL
    await recover_and_check(where, tmp_path, run_id, seen)


def race(*procs: subprocess.Popen[str]) -> list[str]:
    """Let the children claim at the same moment; their last lines."""
    try:
        return _race(procs)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()


def _race(procs: tuple[subprocess.Popen[str], ...]) -> list[str]:
    for proc in procs:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line == "ready", (line, proc.stderr.read() if proc.stderr else "")
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    answers = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        answers.append(out.strip().splitlines()[-1])
    return answers


@pytest.mark.asyncio
async def test_two_processes_resuming_one_suspended_run(
    where: tuple[str, str], tmp_path: Path
) -> None:
    run_id = str(uuid.uuid4())
    setup = child("suspend", where, tmp_path, run_id)
    out, err = setup.communicate(timeout=60)
    assert out.strip() == "suspended", err
    answers = race(*(child("resume", where, tmp_path, run_id) for _ in range(2)))
    assert sorted(answers) == ["claimed", "won success"]
    assert done(tmp_path) == ["approve"]


@pytest.mark.parametrize("modes", [("resume", "recover"), ("recover", "recover")])
@pytest.mark.asyncio
async def test_processes_racing_to_recover_one_interrupted_run(
    where: tuple[str, str], tmp_path: Path, modes: tuple[str, str]
) -> None:
    run_id = str(uuid.uuid4())
    crashed(child("run", where, tmp_path, run_id, crash="checkpoint.after-commit:3"))
    before = done(tmp_path)
    answers = race(*(child(mode, where, tmp_path, run_id) for mode in modes))
    assert sorted(answers)[-1] == "won success" and answers.count("won success") == 1
    assert all(a in ("won success", "claimed", "none") for a in answers)
    ran = done(tmp_path)
    assert sorted(set(ran)) == STEPS and len(ran) - len(before) <= 5
    assert sum(ran.count(s) - 1 for s in STEPS) <= 1
