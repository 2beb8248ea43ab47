"""What the start queue and the remote runs use of the server's run registry.

:class:`~stepstream.server._registry.Runs` builds on both (``_queue``, ``_remote``); they name
the registry through this protocol, so the imports go one way (the registry above them).
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Any, Protocol

from ..run import Run
from ..storage import Storage
from ..workflow import Workflow

__all__ = ["Registry"]


class Registry(Protocol):
    """The parts of :class:`~stepstream.server._registry.Runs` its helpers use (runs are a
    :class:`~stepstream.Run` or a remote one: ``Any`` here, the registry knows which)."""

    max_runs: int
    storage: Storage
    workflows: dict[str, Workflow]

    @property
    def entries(self) -> Mapping[tuple[str, str], Any]:
        """The runs kept in memory, each with its ``run``."""
        ...

    def workflow(self, key: str) -> Workflow: ...

    async def create(self, key: str, run_id: str | None) -> Any: ...

    def forget(self, key: str, run: Any) -> None: ...

    def background(self, work: Awaitable[Any], key: str, run: Any) -> None: ...

    def executing_here(self, run_id: str) -> tuple[str, Run] | None: ...
