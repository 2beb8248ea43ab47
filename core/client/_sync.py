"""The blocking client: :class:`Client` and its :class:`Workflow` handles.

Each method runs its :class:`~stepstream.client.AsyncWorkflow` twin on the calling thread's
event loop (:mod:`stepstream._loop`, as ``Run.start_sync`` does), so both clients behave
alike: the plain methods are made from the async ones (one definition, so the signatures are
the same), the streaming ones iterate theirs. Use it from plain code, not from inside a
running event loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .._loop import run_sync, thread_runner, twin_of
from ..context import RuntimeContext
from ..events import Event
from ..run_stream import iterate_sync
from ._async import AsyncClient, AsyncWorkflow


class Client:
    """The blocking twin of :class:`~stepstream.client.AsyncClient` (same parameters)."""

    def __init__(self, base_url: str, *, token: str | None = None, timeout: float = 60.0) -> None:
        self.twin = AsyncClient(base_url, token=token, timeout=timeout)

    def workflow(self, key: str) -> Workflow:
        """The workflow registered under ``key``."""
        return Workflow(self, self.twin.workflow(key))

    workflows = twin_of(AsyncClient.workflows)
    health = twin_of(AsyncClient.health)

    def close(self) -> None:
        """Close the connections (the thread's event loop lives on for other calls)."""
        run_sync(self.twin.aclose())

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Workflow:
    """One workflow of the server: the blocking twin of :class:`AsyncWorkflow`."""

    def __init__(self, client: Client, twin: AsyncWorkflow) -> None:
        self.client = client
        self.twin = twin

    details = twin_of(AsyncWorkflow.details)
    create_run = twin_of(AsyncWorkflow.create_run)
    start = twin_of(AsyncWorkflow.start)
    start_async = twin_of(AsyncWorkflow.start_async)
    resume = twin_of(AsyncWorkflow.resume)
    resume_async = twin_of(AsyncWorkflow.resume_async)
    runs = twin_of(AsyncWorkflow.runs)
    run_by_id = twin_of(AsyncWorkflow.run_by_id)
    execution_result = twin_of(AsyncWorkflow.execution_result)
    cancel = twin_of(AsyncWorkflow.cancel)
    send_event = twin_of(AsyncWorkflow.send_event)

    def stream(
        self,
        input_data: Any = None,
        *,
        run_id: str | None = None,
        runtime_context: RuntimeContext | None = None,
    ) -> Iterator[Event]:
        """See :meth:`AsyncWorkflow.stream`."""
        events = self.twin.stream(input_data, run_id=run_id, runtime_context=runtime_context)
        return iterate_sync(thread_runner(), events)

    def watch(self, run_id: str) -> Iterator[dict[str, Any]]:
        """See :meth:`AsyncWorkflow.watch`."""
        return iterate_sync(thread_runner(), self.twin.watch(run_id))

    def events(self, run_id: str, *, after: int = -1) -> Iterator[Event]:
        """See :meth:`AsyncWorkflow.events`."""
        return iterate_sync(thread_runner(), self.twin.events(run_id, after=after))
