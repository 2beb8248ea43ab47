"""POST every stepstream event, in batches, to a webhook.

Installing this package is all it takes: its entry point (group ``stepstream``, name
``webhook``) makes every plugin manager that autoloads entry points register :data:`plugin`,
which is configured from the environment:

* ``STEPSTREAM_WEBHOOK_URL``: where to POST. Unset or empty, the plugin is inert: its hooks
  return at once and no thread is started.
* ``STEPSTREAM_WEBHOOK_TOKEN`` (optional): sent as ``Authorization: Bearer <token>``.

Each POST's JSON body holds a batch of consecutive events, in stream order::

    {"events": [{"runId": "...", "seq": 0, "event": {"type": "start", "payload": {...}}}, ...]}

``event`` is the event's wire object (:meth:`Event.to_wire`, in JSON form), untouched, so it
is exactly the Mastra JSON a ``Run.stream()`` consumer would serialise; ``runId`` and ``seq``
say where it belongs. A batch may mix runs. One worker thread sends the batches one after
the other, so a receiver gets each run's events in ``seq`` order. A non-2xx answer or a
transport error fails the batch (it is not retried); :class:`ThreadedExporter` reports it on
the next event, as a ``plugin-error`` naming ``webhook``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from stepstream import hookimpl
from stepstream.plugins.exporter import ThreadedExporter

if TYPE_CHECKING:
    import asyncio

    from stepstream import Event, WorkflowResult

__all__ = ["TOKEN_ENV", "URL_ENV", "WebhookExporter", "plugin"]

URL_ENV = "STEPSTREAM_WEBHOOK_URL"
TOKEN_ENV = "STEPSTREAM_WEBHOOK_TOKEN"


@dataclass(frozen=True)
class _Endpoint:
    """Where a batch goes: swapped as one object, so the worker never sees half a change."""

    url: str
    headers: dict[str, str]

    @classmethod
    def from_env(cls) -> _Endpoint | None:
        url = os.environ.get(URL_ENV)
        if not url:
            return None
        token = os.environ.get(TOKEN_ENV)
        return cls(url, {"Authorization": f"Bearer {token}"} if token else {})


class WebhookExporter(ThreadedExporter):
    """A :class:`ThreadedExporter` that POSTs each batch of events as JSON to ``url``.

    The body is described in the module docstring. Requests are made with a synchronous
    :class:`httpx.Client` on the exporter's worker thread, never on the event loop.

    :param url: Where to POST; ``None`` or empty makes the exporter inert.
    :param headers: Extra request headers (``Authorization``...).
    :param timeout: Seconds allowed per request.
    :param batch_size: The most events in one POST.
    """

    def __init__(
        self,
        url: str | None,
        *,
        headers: dict[str, str] | None = None,
        timeout: float = 10.0,
        batch_size: int = 100,
    ) -> None:
        super().__init__("webhook", batch_size=batch_size)
        self.timeout = timeout
        self._endpoint = _Endpoint(url, dict(headers or {})) if url else None
        # Queued batches keep going to the last endpoint even when a later run turns this off.
        self._active = self._endpoint is not None
        self._follows_env = False
        self._client: httpx.Client | None = None

    @classmethod
    def from_env(cls, *, timeout: float = 10.0, batch_size: int = 100) -> WebhookExporter:
        """Make an exporter configured by ``STEPSTREAM_WEBHOOK_URL`` and ``..._TOKEN``.

        The variables are read when each run starts, not now: the entry point is imported once
        per process, possibly before the environment is set (a test setting it, for one).
        """
        exporter = cls(None, timeout=timeout, batch_size=batch_size)
        exporter._follows_env = True
        return exporter

    @property
    def url(self) -> str | None:
        """The URL events are posted to, or ``None`` while the exporter is inert."""
        return self._endpoint.url if self._active and self._endpoint is not None else None

    # -- hooks (on the event loop) ------------------------------------------------------------

    @hookimpl
    def before_workflow_run(self) -> None:
        """Read the environment again if made by :meth:`from_env`; no I/O."""
        if not self._follows_env:
            return
        endpoint = _Endpoint.from_env()
        self._active = endpoint is not None
        if endpoint is not None:
            self._endpoint = endpoint

    @hookimpl
    def on_event(self, event: Event) -> asyncio.Future[None] | None:
        """Queue the event for the worker, or do nothing at all while inert."""
        if not self._active:
            return None
        return super().on_event(event)

    @hookimpl
    def after_workflow_run(self, run_id: str, result: WorkflowResult) -> None:
        """Mark a suspended run's end for the worker, or do nothing at all while inert."""
        if self._active:
            super().after_workflow_run(run_id, result)

    # -- worker thread ------------------------------------------------------------------------

    def export(self, events: list[Event]) -> None:
        """POST one batch; raise on a transport error or a non-2xx answer."""
        endpoint = self._endpoint
        if endpoint is None:  # events are only queued once an endpoint is known
            raise RuntimeError(f"no webhook URL: set {URL_ENV}")
        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout)
        body: dict[str, Any] = {"events": [_entry(event) for event in events]}
        response = self._client.post(endpoint.url, json=body, headers=endpoint.headers)
        response.raise_for_status()

    def shutdown(self) -> None:
        """Close the HTTP client (the worker has stopped)."""
        if self._client is not None:
            self._client.close()
            self._client = None


def _entry(event: Event) -> dict[str, Any]:
    # mode="json" runs the event's wire serializer and makes step data JSON-safe (dates...).
    return {"runId": event.run_id, "seq": event.seq, "event": event.model_dump(mode="json")}


plugin = WebhookExporter.from_env()
"""The instance the ``webhook`` entry point names; inert until ``STEPSTREAM_WEBHOOK_URL`` is set."""
