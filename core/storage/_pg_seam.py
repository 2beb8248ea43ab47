"""What the PostgreSQL storage's helpers (control messages, the start queue) use of it.

``postgres.py`` builds those helpers; they name the storage through this protocol, so the
imports go one way (the storage above its helpers).
"""

from __future__ import annotations

from typing import Protocol

from psycopg import sql
from psycopg_pool import AsyncConnectionPool

__all__ = ["PostgresLike"]


class PostgresLike(Protocol):
    """The parts of :class:`~stepstream.storage.postgres.PostgresStorage` its helpers use."""

    _t: dict[str, sql.Identifier]
    _held: dict[str, str]
    follow_recheck: float
    lease_seconds: float

    async def _get_pool(self) -> AsyncConnectionPool: ...

    async def _listening(self) -> None: ...
