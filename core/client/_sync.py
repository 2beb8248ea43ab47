"""The blocking client: :class:`Client` and its :class:`Workflow` handles.

Each method runs its :class:`~stepstream.client.AsyncWorkflow` twin on the client's private
event loop (as ``Run.start_sync`` does), so both clients behave alike; a test keeps their
signatures the same. Use it from plain code, not from inside a running event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from ..context import RuntimeContext
from ..events import Event
from ..result import WorkflowResult
from ..run_stream import iterate_sync
from ._async import AsyncClient, AsyncWorkflow


class Client:
    """The blocking twin of :class:`~stepstream.client.AsyncClient` (same parameters)."""

    def __init__(self, base_url: str, *, token: str | None = None, timeout: float = 60.0) -> None:
        self.runner = asyncio.Runner()
        self.twin = AsyncClient(base_url, token=token, timeout=timeout)

    def workflow(self, key: str) -> Workflow:
        """The workflow registered under ``key``."""
        return Workflow(self, self.twin.workflow(key))

    def workflows(self) -> dict[str, Any]:
        """Every workflow's description, by registration key."""
        return self.runner.run(self.twin.workflows())

    def health(self) -> dict[str, Any]:
        """The server's health answer."""
        return self.runner.run(self.twin.health())

    def close(self) -> None:
        """Close the connections and the private event loop."""
        self.runner.run(self.twin.aclose())
        self.runner.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Workflow:
    """One workflow of the server: the blocking twin of :class:`AsyncWorkflow`."""

    def __init__(self, client: Client, twin: AsyncWorkflow) -> None:
        self.client = client
        self.twin = twin
        self._run = client.runner.run

    def details(self) -> dict[str, Any]:
        """See :meth:`AsyncWorkflow.details`."""
        return self._run(self.twin.details())

    def create_run(self, run_id: str | None = None) -> str:
        """See :meth:`AsyncWorkflow.create_run`."""
        return self._run(self.twin.create_run(run_id))

    def start(
        self, run_id: str, input_data: Any = None, runtime_context: RuntimeContext | None = None
    ) -> None:
        """See :meth:`AsyncWorkflow.start`."""
        self._run(self.twin.start(run_id, input_data, runtime_context))

    def start_async(
        self,
        input_data: Any = None,
        *,
        run_id: str | None = None,
        runtime_context: RuntimeContext | None = None,
    ) -> WorkflowResult:
        """See :meth:`AsyncWorkflow.start_async`."""
        return self._run(
            self.twin.start_async(input_data, run_id=run_id, runtime_context=runtime_context)
        )

    def stream(
        self,
        input_data: Any = None,
        *,
        run_id: str | None = None,
        runtime_context: RuntimeContext | None = None,
    ) -> Iterator[Event]:
        """See :meth:`AsyncWorkflow.stream`."""
        events = self.twin.stream(input_data, run_id=run_id, runtime_context=runtime_context)
        return iterate_sync(self.client.runner, events)

    def watch(self, run_id: str) -> Iterator[dict[str, Any]]:
        """See :meth:`AsyncWorkflow.watch`."""
        return iterate_sync(self.client.runner, self.twin.watch(run_id))

    def resume(
        self,
        run_id: str,
        step: str | list[str],
        resume_data: Any = None,
        runtime_context: RuntimeContext | None = None,
    ) -> None:
        """See :meth:`AsyncWorkflow.resume`."""
        self._run(self.twin.resume(run_id, step, resume_data, runtime_context))

    def resume_async(
        self,
        run_id: str,
        step: str | list[str],
        resume_data: Any = None,
        runtime_context: RuntimeContext | None = None,
    ) -> WorkflowResult:
        """See :meth:`AsyncWorkflow.resume_async`."""
        return self._run(self.twin.resume_async(run_id, step, resume_data, runtime_context))

    def runs(self, *, limit: int | None = None, offset: int | None = None) -> dict[str, Any]:
        """See :meth:`AsyncWorkflow.runs`."""
        return self._run(self.twin.runs(limit=limit, offset=offset))

    def run_by_id(self, run_id: str) -> dict[str, Any]:
        """See :meth:`AsyncWorkflow.run_by_id`."""
        return self._run(self.twin.run_by_id(run_id))

    def execution_result(self, run_id: str) -> dict[str, Any]:
        """See :meth:`AsyncWorkflow.execution_result`."""
        return self._run(self.twin.execution_result(run_id))

    def cancel(self, run_id: str) -> None:
        """See :meth:`AsyncWorkflow.cancel`."""
        self._run(self.twin.cancel(run_id))

    def send_event(self, run_id: str, event: str, data: Any = None) -> None:
        """See :meth:`AsyncWorkflow.send_event`."""
        self._run(self.twin.send_event(run_id, event, data))

    def events(self, run_id: str, *, after: int = -1) -> Iterator[Event]:
        """See :meth:`AsyncWorkflow.events`."""
        return iterate_sync(self.client.runner, self.twin.events(run_id, after=after))
