"""A Python client of the stepstream HTTP server (``stepstream[client]``).

``AsyncClient(base_url, token=...)`` (asyncio) and ``Client`` (blocking) give, per workflow
(``client.workflow("seqWf")``), the methods of ``@mastra/client-js``'s ``Workflow``:
``create_run``, ``start``, ``start_async``, ``stream``, ``watch``, ``resume``,
``resume_async``, ``runs``, ``run_by_id``, ``execution_result``, ``cancel``, ``send_event``,
plus ``events``: the run's Server-Sent Events, reconnecting with ``Last-Event-ID`` after a lost
connection so that nothing is missed or repeated. Streams yield the typed events of
``Run.stream()`` (``stepstream.events``); ``start_async`` and ``resume_async`` return a
:class:`~stepstream.result.WorkflowResult`. Every failure is a
:class:`~stepstream.errors.ClientError`.

::

    async with AsyncClient("http://127.0.0.1:4111") as client:
        async for event in client.workflow("seqWf").stream({"value": 21}):
            print(event.type)
"""

from __future__ import annotations

from ._async import AsyncClient, AsyncWorkflow
from ._sync import Client, Workflow

__all__ = ["AsyncClient", "AsyncWorkflow", "Client", "Workflow"]
