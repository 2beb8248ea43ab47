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
    args = ["serve", f"{SAMPLES}:two_steps,approval", "--port", str(port)]
    args += ["--cors-origin", "http://ui.test", "--body-limit", "1000"]
    proc = subprocess.Popen(
        cli_command(*args),
        cwd=ROOT,
        env=child_env(STEPSTREAM_TOKEN="s3cret"),  # the token kept out of `ps`
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    auth = {"Authorization": "Bearer s3cret"}
    try:
        LiveOutput(proc.stdout.readline).wait_for(
            f"serving approval, two_steps on http://127.0.0.1:{port}"
        )
        base = f"http://127.0.0.1:{port}"
        url = f"{base}/api/workflows"
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
        listed = httpx.get(url, headers=auth, timeout=5)
        assert listed.status_code == 200
        assert set(listed.json()) == {"two_steps", "approval"}
        preflight = httpx.options(
            url,
            headers={"Origin": "http://ui.test", "Access-Control-Request-Method": "GET"},
            timeout=5,
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "http://ui.test"
        big = httpx.post(
            f"{url}/two_steps/start-async", headers=auth, json={"inputData": "x" * 2000}
        )
        assert big.status_code == 413
        _leave_a_follower_then_resume(f"{url}/approval", auth)
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        _, stderr = proc.communicate(timeout=15)
    assert proc.returncode == 0
    # An SSE client that left is no longer written to (uvicorn would log each write).
    assert "socket.send() raised exception" not in stderr


def _leave_a_follower_then_resume(url: str, auth: dict[str, str]) -> None:
    with httpx.Client(base_url=url, headers=auth, timeout=10) as client:
        run_id = client.post("/create-run").json()["runId"]
        client.post(f"/start-async?runId={run_id}", json={"inputData": {"item": "lamp"}})
        with client.stream("GET", f"/runs/{run_id}/events") as events:
            assert b"event: start" in next(events.iter_raw())
        resumed = client.post(
            f"/resume-async?runId={run_id}",
            json={"step": "approve", "resumeData": {"approved": True}},
        )
        assert resumed.json()["status"] == "success"


def test_serve_of_a_module_without_workflows_exits_2() -> None:
    done = cli("serve", "tests.cli.child")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "stepstream: error: tests.cli.child has no committed Workflow attribute\n"
