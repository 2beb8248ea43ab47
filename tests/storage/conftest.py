"""Fixtures for the storage contract: a throwaway PostgreSQL server and one backend per test.

The server is started once per session with the distribution's own binaries (``initdb`` as the
``postgres`` user when the tests run as root, since ``initdb`` refuses root). Without those
binaries the PostgreSQL tests are skipped, unless ``CI`` is set: CI must run them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import pytest_asyncio

from stepstream.storage import Storage
from stepstream.storage.postgres import PostgresStorage
from stepstream.storage.sqlite import SQLiteStorage

_DATABASE = "stepstream_test"


def _server_bindir() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` live: not on PATH on Debian, so ask ``pg_config``."""
    candidates: list[Path] = []
    if pg_config := shutil.which("pg_config"):
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(Path(out.stdout.strip()))
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    if initdb := shutil.which("initdb"):
        candidates.append(Path(initdb).parent)
    return next((d for d in candidates if (d / "initdb").is_file()), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """The DSN of an empty database on a PostgreSQL server started for this session."""
    bindir = _server_bindir()
    if bindir is None:
        reason = "PostgreSQL server binaries (initdb) not found; apt-get install -y postgresql"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    # initdb refuses to run as root: run the server binaries as the postgres user instead.
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root = Path(tempfile.mkdtemp(prefix="stepstream-pg-"))
    data, port = root / "data", _free_port()
    pg_ctl = [*as_user, str(bindir / "pg_ctl"), "-D", str(data)]
    try:
        if as_user:
            shutil.chown(root, "postgres", "postgres")
        initdb = [*as_user, str(bindir / "initdb"), "-D", str(data), "--no-sync"]
        initdb += ["--auth=trust", "--username=postgres", "--encoding=UTF8", "--locale=C"]
        done = subprocess.run(initdb, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.fail(f"initdb failed:\n{done.stdout}{done.stderr}")
        options = f"-k {root} -p {port} -c listen_addresses=127.0.0.1 -F"
        start = [*pg_ctl, "-w", "-l", str(root / "server.log"), "-o", options, "start"]
        if subprocess.run(start, capture_output=True, check=False).returncode != 0:
            log = (root / "server.log").read_text(errors="replace")
            pytest.fail(f"pg_ctl start failed:\n{log}")
        admin = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {_DATABASE}")
        yield f"postgresql://postgres@127.0.0.1:{port}/{_DATABASE}"
    finally:
        # Also after a failed or timed-out start; with no server running this is a no-op.
        subprocess.run([*pg_ctl, "-m", "fast", "-w", "stop"], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgres"])
def storage_opener(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Storage]:
    """Opens a new backend instance on this test's own store (same file, same schema)."""
    if request.param == "sqlite":
        path = tmp_path / "runs.db"
        return lambda: SQLiteStorage(path)
    dsn: str = request.getfixturevalue("postgres_dsn")
    schema = f"test_{uuid.uuid4().hex}"  # a schema per test keeps tests apart
    return lambda: PostgresStorage(dsn, schema=schema)


@pytest_asyncio.fixture
async def storage(storage_opener: Callable[[], Storage]) -> AsyncIterator[Storage]:
    """A fresh, empty backend, closed after the test."""
    backend = storage_opener()
    try:
        yield backend
    finally:
        await backend.close()
