"""A plugin that records what a run does, for assertions in tests."""

from __future__ import annotations

from typing import Any

from ..events import Event
from ..hookspecs import hookimpl

__all__ = ["Recorder"]


class Recorder:
    """Keeps every event and every lifecycle hook call it sees, in order.

    Register it like any plugin (``get_plugin_manager(plugins=[("recorder", recorder)])``);
    ``events`` holds the events as the hook saw them and ``calls`` the lifecycle calls as
    ``(hook name, {the arguments worth asserting on})``.
    """

    def __init__(self) -> None:
        """Start with nothing recorded."""
        self.events: list[Event] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []

    @hookimpl
    def on_event(self, event: Event) -> None:
        """Record an event."""
        self.events.append(event)

    @hookimpl
    def before_workflow_run(self, run_id: str, workflow_id: str, input_data: Any) -> None:
        """Record the start of a run."""
        self.calls.append(("before_workflow_run", {"workflow_id": workflow_id}))

    @hookimpl
    def after_workflow_run(self, run_id: str, workflow_id: str, result: Any) -> None:
        """Record the end of a run with its status."""
        self.calls.append(("after_workflow_run", {"status": result.status}))

    @hookimpl
    def before_step_run(self, run_id: str, step_id: str, input_data: Any) -> None:
        """Record the start of a step."""
        self.calls.append(("before_step_run", {"step_id": step_id}))

    @hookimpl
    def after_step_run(self, run_id: str, step_id: str, status: str, output: Any) -> None:
        """Record the end of a step with its status."""
        self.calls.append(("after_step_run", {"step_id": step_id, "status": status}))

    @hookimpl
    def on_step_error(self, run_id: str, step_id: str, error: BaseException) -> None:
        """Record a step's error."""
        self.calls.append(("on_step_error", {"step_id": step_id, "error": error}))

    def wire(self) -> list[dict[str, Any]]:
        """Return the recorded events in Mastra's JSON form."""
        return [e.to_wire() for e in self.events]

    def types(self) -> list[str]:
        """Return the recorded events' types, in order."""
        return [e.type for e in self.events]
