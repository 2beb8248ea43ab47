"""A real ``stepstream serve`` child process for the tests that need one (durable serving,
the cluster): started on a free port of 127.0.0.1, waited for through ``/health``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


class ServeProcess:
    """``stepstream serve TARGET --db DB`` with ``extra`` options, its steps marking in
    ``marks`` (``SAMPLE_MARKS``); ``wait_ready()`` once it should be listening."""

    def __init__(self, target: str, db: str, marks: Path, *extra: str) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
        env.update(SAMPLE_MARKS=str(marks), STEPSTREAM_DISABLE_PLUGIN_AUTOLOAD="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stepstream.cli", "serve", target, "--db", db,
             "--port", str(self.port), *extra],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    def wait_ready(self, within: float) -> None:
        """Return once the server answers ``/health``; fail if it exits or takes longer."""
        deadline = time.monotonic() + within
        while True:  # waits for the server to listen (a condition, with a deadline)
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert self.proc.poll() is None, self.proc.communicate()[1]
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM, *, within: float = 30) -> str:
        """Send ``sig`` (if it still runs) and return what it wrote to stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.communicate(timeout=within)[1]
