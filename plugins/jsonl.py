"""The optional built-in ``jsonl`` exporter: each event's wire JSON, one line per event.

``JsonLinesExporter(directory)`` writes a file per run, ``<directory>/<run_id>.jsonl``, holding
exactly the run's wire events in stream order; ``JsonLinesExporter(file=path)`` appends every
run to one file, each line ``{"runId": ..., "seq": ..., "event": <wire event>}`` since runs
interleave there. Files are written by a worker thread (never on the event loop), flushed after
every batch and closed when their run ends; call :meth:`flush` or :meth:`close` to wait.
``get_plugin_manager(plugins=["jsonl"])`` uses the directory ``stepstream-events``.

In the directory form a run id becomes a file name, so an id that does not match
``stepstream.run_ids.RUN_ID_PATTERN`` (``../x``, ``/etc/x``, ...) is refused: its events are
not written, and the refusal is reported as this plugin's error (the run goes on).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import IO

from stepstream.errors import PluginError
from stepstream.events import Event
from stepstream.hookspecs import hookimpl
from stepstream.run_ids import is_safe_run_id

from .exporter import ThreadedExporter

__all__ = ["JsonLinesExporter"]


class JsonLinesExporter(ThreadedExporter):
    """Writes stream events to JSON-lines files (see the module docstring)."""

    def __init__(
        self, directory: str | Path = "stepstream-events", *, file: str | Path | None = None
    ) -> None:
        super().__init__("jsonl")
        self.directory = Path(directory)
        self.file = Path(file) if file is not None else None
        self._handles: dict[str, IO[str]] = {}

    def path_for(self, run_id: str) -> Path:
        """Where a run's events are written.

        :raises PluginError: in the directory form, for a run id that is not a safe file name.
        """
        if self.file is not None:
            return self.file
        if not is_safe_run_id(run_id):
            raise PluginError(
                f"jsonl: run id {run_id[:60]!r} cannot name a file (see stepstream.run_ids)",
                plugin=self.name,
                hook="on_event",
            )
        return self.directory / f"{run_id}.jsonl"

    @hookimpl
    def on_event(self, event: Event) -> asyncio.Future[None] | None:
        """Refuse an unsafe run id here, on the loop, before anything reaches the worker."""
        self.path_for(event.run_id)
        return super().on_event(event)

    def export(self, events: list[Event]) -> None:
        touched: set[IO[str]] = set()
        for event in events:
            handle = self._open_for(event.run_id)
            if self.file is None:
                line = json.dumps(event.to_wire(), ensure_ascii=False)
            else:
                envelope = {"runId": event.run_id, "seq": event.seq, "event": event.to_wire()}
                line = json.dumps(envelope, ensure_ascii=False)
            handle.write(line + "\n")
            touched.add(handle)
        for handle in touched:
            handle.flush()

    def finish_run(self, run_id: str) -> None:
        if self.file is None:
            handle = self._handles.pop(run_id, None)
            if handle is not None:
                handle.close()

    def shutdown(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()

    def _open_for(self, run_id: str) -> IO[str]:
        key = "" if self.file is not None else run_id
        handle = self._handles.get(key)
        if handle is None:
            path = self.path_for(run_id)
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = self._handles[key] = path.open("a", encoding="utf-8")
        return handle
