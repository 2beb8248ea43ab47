"""Fixtures of the cluster tests: several real ``stepstream serve`` processes on one throwaway
PostgreSQL database (the testing kit's ``postgres_dsn``, a schema per test)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]
TARGET = "tests.cluster.workflows"
LEASE = 3.0
"""The instances' lease, in seconds. A killed instance's runs are taken over at the next
recovery round (every third of it): on one host its dead pid gives it away before the lease
expires; short anyway, and long enough that a loaded machine does not miss a renewal."""


class Instance:
    """A ``stepstream serve`` child process on a free port of 127.0.0.1."""

    def __init__(self, db: str, marks: Path, *extra: str) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
        env.update(SAMPLE_MARKS=str(marks), STEPSTREAM_DISABLE_PLUGIN_AUTOLOAD="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stepstream.cli", "serve", TARGET, "--db", db,
             "--port", str(self.port), "--lease", str(LEASE), *extra],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while True:  # waits for the server to listen (a condition, with a deadline)
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert self.proc.poll() is None, self.proc.communicate()[1]
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.communicate(timeout=60)[1]


@pytest.fixture
def db(postgres_dsn: str) -> str:
    """The ``--db`` of this test's own schema."""
    schema = f"cluster_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return f"{postgres_dsn}?options=-csearch_path%3D{schema}"


@pytest.fixture
def cluster(db: str, tmp_path: Path) -> Iterator[list[Instance]]:
    """Three instances on one database, started side by side."""
    instances = [Instance(db, tmp_path) for _ in range(3)]
    try:
        for instance in instances:
            instance.wait_ready()
        yield instances
    finally:
        for instance in instances:
            instance.stop()


def done(marks: Path) -> list[tuple[str, str, int]]:
    """``(run id, step id, pid)`` of every step body that ended, in order."""
    path = marks / "done.txt"
    if not path.exists():
        return []
    return [(r, s, int(p)) for r, s, p in (line.split() for line in path.read_text().splitlines())]
