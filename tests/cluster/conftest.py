"""Fixtures of the cluster tests: several real ``stepstream serve`` processes on one throwaway
PostgreSQL database (the testing kit's ``postgres_dsn``, a schema per test)."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from ..serving import ServeProcess

TARGET = "tests.cluster.workflows"
LEASE = 3.0
"""The instances' lease, in seconds. A killed instance's runs are taken over at the next
recovery round (every third of it): on one host its dead pid gives it away before the lease
expires; short anyway, and long enough that a loaded machine does not miss a renewal."""


class Instance(ServeProcess):
    """A ``stepstream serve`` instance of the cluster's workflows on a free port."""

    def __init__(self, db: str, marks: Path, *extra: str) -> None:
        super().__init__(TARGET, db, marks, "--lease", str(LEASE), *extra)

    def wait_ready(self, within: float = 60) -> None:
        super().wait_ready(within)

    def stop(self, sig: int = signal.SIGTERM, *, within: float = 60) -> str:
        return super().stop(sig, within=within)


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
