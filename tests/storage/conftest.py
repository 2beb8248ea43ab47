"""Fixtures for the storage contract: one backend per test, SQLite or PostgreSQL.

The PostgreSQL server is the testing kit's ``postgres_dsn`` fixture (``stepstream.testing``),
started once per session with the distribution's own binaries. Without those binaries the
PostgreSQL tests are skipped, unless ``CI`` is set: CI must run them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio

from stepstream.storage import Storage
from stepstream.storage.postgres import PostgresStorage
from stepstream.storage.sqlite import SQLiteStorage


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
