"""Fixtures for the storage contract: a throwaway PostgreSQL server and one backend per test.

The server is started once per session with the distribution's own binaries (``initdb`` as the
``postgres`` user when the tests run as root, since ``initdb`` refuses root). Without those
binaries the PostgreSQL tests are skipped, unless ``CI`` is set: CI must run them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from stepstream.storage import Storage
from stepstream.storage.postgres import PostgresStorage
from stepstream.storage.sqlite import SQLiteStorage
from stepstream.storage.throwaway import ThrowawayPostgres

_DATABASE = "stepstream_test"


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """The DSN of an empty database on a PostgreSQL server started for this session."""
    try:
        server = ThrowawayPostgres(database=_DATABASE)
    except FileNotFoundError as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    try:
        with server as dsn:
            yield dsn
    except RuntimeError as exc:  # initdb or pg_ctl failed: their output says why
        pytest.fail(str(exc))


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
