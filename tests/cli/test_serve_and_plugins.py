"""``stepstream plugins`` and ``stepstream serve``."""

from __future__ import annotations

import signal
import socket
import subprocess
import time

import httpx

from .child import ROOT, SAMPLES, LiveOutput, child_env, cli, cli_command


def test_plugins_lists_each_plugin_and_its_source() -> None:
    done = cli("plugins", env=child_env(STEPSTREAM_DISABLE_PLUGIN_AUTOLOAD=""))
    assert done.returncode == 0, done.stderr
    rows = {
        tuple(cell.strip() for cell in line.split("│")[1:3]) for line in done.stdout.splitlines()
    }
    assert {("stream", "default"), ("openai-adapter", "default"), ("logger", "default")} <= rows
    # examples/exporter-package is installed beside stepstream (see the README).
    assert ("webhook", "entrypoint:stepstream-webhook") in rows
    assert "available by name (-p NAME): metrics, jsonl, otel" in done.stdout


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_serve_serves_the_named_workflows() -> None:
    port = _free_port()
    args = ["serve", f"{SAMPLES}:two_steps,approval", "--port", str(port), "--token", "s3cret"]
    proc = subprocess.Popen(
        cli_command(*args), cwd=ROOT, env=child_env(), stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    try:
        LiveOutput(proc.stdout.readline).wait_for(
            f"serving approval, two_steps on http://127.0.0.1:{port}"
        )
        url = f"http://127.0.0.1:{port}/api/workflows"
        # The line is printed just before uvicorn binds: wait for the socket to accept.
        deadline = time.monotonic() + 15
        while True:
            try:
                refused = httpx.get(url, timeout=5)
                break
            except httpx.ConnectError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        assert refused.status_code == 401
        listed = httpx.get(url, headers={"Authorization": "Bearer s3cret"}, timeout=5)
        assert listed.status_code == 200
        assert set(listed.json()) == {"two_steps", "approval"}
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        proc.communicate(timeout=15)
    assert proc.returncode == 0


def test_serve_of_a_module_without_workflows_exits_2() -> None:
    done = cli("serve", "tests.cli.child")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "stepstream: error: tests.cli.child has no committed Workflow attribute\n"
