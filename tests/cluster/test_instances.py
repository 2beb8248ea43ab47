"""``stepstream serve --instances N``: N processes on one socket and one PostgreSQL database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from ..serving import ROOT
from .conftest import TARGET


def test_instances_serve_one_port_and_stop_together(db: str, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "SAMPLE_MARKS": str(tmp_path), "STEPSTREAM_DISABLE_PLUGIN_AUTOLOAD": "1"}
    parent = subprocess.Popen(
        [sys.executable, "-m", "stepstream.cli", "serve", TARGET, "--db", db, "--port", str(port),
         "--instances", "3", "--lease", "2"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()
        assert f"on http://127.0.0.1:{port} from 3 instances" in line, line
        pids = [int(p) for p in line.split("(pids ")[1].rstrip(")\n").split(", ")]
        assert len(set(pids)) == 3
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:  # the instances listen once their apps started (a condition, a deadline)
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert parent.poll() is None, parent.communicate()[1]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with httpx.Client(base_url=url, timeout=30) as client:
            answers = [
                client.post("/api/workflows/approval/start-async", json={"inputData": {}})
                for _ in range(6)
            ]
        assert [a.json()["status"] for a in answers] == ["suspended"] * 6
    finally:
        parent.send_signal(signal.SIGTERM)
        _, err = parent.communicate(timeout=60)
    assert parent.returncode == 0, err
    for pid in pids:  # every instance stopped with its parent
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        raise AssertionError(f"instance {pid} still runs")


def test_instances_need_postgresql(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "stepstream.cli", "serve", TARGET, "--db",
         str(tmp_path / "runs.db"), "--instances", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--instances needs a PostgreSQL --db" in done.stderr
    assert not (tmp_path / "runs.db").exists()  # nothing was started or created
