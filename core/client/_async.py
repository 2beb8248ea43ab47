"""The asyncio client: :class:`AsyncClient` and its :class:`AsyncWorkflow` handles."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from ..context import RuntimeContext
from ..errors import ClientError
from ..events import Event
from ..result import WorkflowResult
from ._protocol import (
    RECONNECTS,
    Call,
    Calls,
    Numbering,
    RecordSplitter,
    answer,
    backoff,
    error_of,
    result_from_wire,
    sse_event,
)

STREAMING = httpx.Timeout(60.0, read=None)  # a suspended run's stream may stay quiet for long


class AsyncClient:
    """A client of ``stepstream serve`` (or any server speaking Mastra's workflow API).

    :param base_url: The server, e.g. ``http://127.0.0.1:4111`` (with a mount prefix if any).
    :param token: Sent as ``Authorization: Bearer <token>``.
    :param timeout: Seconds for each request (streams wait for events without a limit).
    """

    def __init__(self, base_url: str, *, token: str | None = None, timeout: float = 60.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout
        )

    def workflow(self, key: str) -> AsyncWorkflow:
        """The workflow registered under ``key`` (Mastra's ``client.getWorkflow(key)``)."""
        return AsyncWorkflow(self, key)

    async def workflows(self) -> dict[str, Any]:
        """Every workflow's description, by registration key."""
        return await self.call(Call("GET", "/api/workflows"))  # type: ignore[no-any-return]

    async def health(self) -> dict[str, Any]:
        """The server's health answer."""
        return await self.call(Call("GET", "/health"))  # type: ignore[no-any-return]

    async def call(self, call: Call) -> Any:
        """Send ``call``; its JSON answer.

        :raises ClientError: for an error status, or when the server cannot be reached.
        """
        try:
            response = await self.http.send(call.request(self.http))
        except httpx.TransportError as exc:
            raise ClientError(f"{call.method} {call.path}: {exc!r}", url=call.path) from exc
        return answer(response)

    async def records(self, call: Call) -> AsyncGenerator[Any, None]:
        """The ``\\x1e``-separated records of a streamed answer, parsed."""
        splitter = RecordSplitter()
        try:
            request = call.request(self.http)
            request.extensions["timeout"] = STREAMING.as_dict()
            response = await self.http.send(request, stream=True)
            try:
                if not response.is_success:
                    raise error_of(response, await response.aread())
                async for chunk in response.aiter_raw():
                    for record in splitter.feed(chunk):
                        yield record
                for record in splitter.end():
                    yield record
            finally:
                await response.aclose()
        except httpx.TransportError as exc:
            raise ClientError(f"{call.method} {call.path}: {exc!r}", url=call.path) from exc

    async def aclose(self) -> None:
        """Close the connections."""
        await self.http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class AsyncWorkflow:
    """One workflow of the server, with the methods of ``@mastra/client-js``'s ``Workflow``."""

    def __init__(self, client: AsyncClient, key: str) -> None:
        self.client = client
        self.key = key
        self.calls = Calls(key)

    async def details(self) -> dict[str, Any]:
        """Mastra's ``WorkflowInfo`` of this workflow."""
        return await self.client.call(Call("GET", self.calls.base))  # type: ignore[no-any-return]

    async def create_run(self, run_id: str | None = None) -> str:
        """Create a run (with ``run_id`` if given); its id."""
        return str((await self.client.call(self.calls.create_run(run_id)))["runId"])

    async def start(
        self, run_id: str, input_data: Any = None, runtime_context: RuntimeContext | None = None
    ) -> None:
        """Start a created run; returns at once (the run goes on in the server)."""
        await self.client.call(self.calls.start("start", run_id, input_data, runtime_context))

    async def start_async(
        self,
        input_data: Any = None,
        *,
        run_id: str | None = None,
        runtime_context: RuntimeContext | None = None,
    ) -> WorkflowResult:
        """Run to the end (or a suspension); the result."""
        run_id = run_id or await self.create_run()
        call = self.calls.start("start-async", run_id, input_data, runtime_context)
        return result_from_wire(run_id, await self.client.call(call))

    async def stream(
        self,
        input_data: Any = None,
        *,
        run_id: str | None = None,
        runtime_context: RuntimeContext | None = None,
    ) -> AsyncGenerator[Event, None]:
        """Run and yield its events as ``Run.stream()`` does (the run is created if no
        ``run_id`` is given); a suspended run's stream stays open for its resumption."""
        run_id = run_id or await self.create_run()
        numbering = Numbering(run_id)
        call = self.calls.start("stream", run_id, input_data, runtime_context)
        async for wire in self.client.records(call):
            yield numbering.event(wire)

    async def watch(self, run_id: str) -> AsyncGenerator[dict[str, Any], None]:
        """Mastra's watch records of a run (``{type: "watch", payload: {...}}``), to its end
        or suspension."""
        async for record in self.client.records(self.calls.watch(run_id)):
            yield json.loads(record) if isinstance(record, str) else record

    async def resume(
        self,
        run_id: str,
        step: str | list[str],
        resume_data: Any = None,
        runtime_context: RuntimeContext | None = None,
    ) -> None:
        """Resume a suspended step; returns at once."""
        call = self.calls.resume("resume", run_id, step, resume_data, runtime_context)
        await self.client.call(call)

    async def resume_async(
        self,
        run_id: str,
        step: str | list[str],
        resume_data: Any = None,
        runtime_context: RuntimeContext | None = None,
    ) -> WorkflowResult:
        """Resume a suspended step and wait for the run's end (or next suspension)."""
        call = self.calls.resume("resume-async", run_id, step, resume_data, runtime_context)
        return result_from_wire(run_id, await self.client.call(call))

    async def runs(self, *, limit: int | None = None, offset: int | None = None) -> dict[str, Any]:
        """Stored runs: ``{"runs": [...], "total": n}``."""
        return await self.client.call(self.calls.runs(limit, offset))  # type: ignore[no-any-return]

    async def run_by_id(self, run_id: str) -> dict[str, Any]:
        """One stored run (Mastra's ``WorkflowRun``)."""
        call = Call("GET", self.calls.run(run_id))
        return await self.client.call(call)  # type: ignore[no-any-return]

    async def execution_result(self, run_id: str) -> dict[str, Any]:
        """A stored run's ``{status, result?, error?, payload, steps}``."""
        call = Call("GET", self.calls.run(run_id, "/execution-result"))
        return await self.client.call(call)  # type: ignore[no-any-return]

    async def cancel(self, run_id: str) -> None:
        """Cancel a run."""
        await self.client.call(Call("POST", self.calls.run(run_id, "/cancel")))

    async def send_event(self, run_id: str, event: str, data: Any = None) -> None:
        """Send ``event`` to the step that waits for it."""
        await self.client.call(self.calls.send_event(run_id, event, data))

    async def events(self, run_id: str, *, after: int = -1) -> AsyncGenerator[Event, None]:
        """Follow a run over SSE from after sequence number ``after`` to its ``finish``.

        A lost connection is reconnected with ``Last-Event-ID`` (up to ``RECONNECTS`` times in
        a row, backing off), so no event is missed or repeated.

        :raises ClientError: for an error status, or when reconnecting keeps failing.
        """
        last, failures = after, 0
        http = self.client.http
        while True:
            headers = {"Last-Event-ID": str(last)}
            try:
                async with aconnect_sse(
                    http, "GET", self.calls.events(run_id).path, headers=headers, timeout=STREAMING
                ) as source:
                    if not source.response.is_success:
                        body = await source.response.aread()
                        raise error_of(source.response, body)
                    async for sse in source.aiter_sse():
                        if not sse.data:
                            # A ping (an SSE comment): httpx-sse reports the blank line that
                            # ends it as an event, with the last event's id and no data.
                            continue
                        event = sse_event(run_id, sse.id, sse.data)
                        last, failures = event.seq, 0
                        yield event
                        if event.type == "finish":
                            return
                    return  # the server ended the stream: the run has ended
            except httpx.TransportError as exc:
                failures += 1
                if failures > RECONNECTS:
                    raise ClientError(
                        f"lost the events of run {run_id} after {RECONNECTS} reconnects: {exc!r}",
                        url=str(http.base_url),
                    ) from exc
                await asyncio.sleep(backoff(failures))
