"""A test runner: one call runs a workflow and returns everything a test asserts on.

Modelled on workflows-py's ``WorkflowTestRunner``: the report holds the events in order, their
counts by type, the workflow's output and its final state.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._loop import sync_twin
from ..plugin_manager import PluginManager, get_plugin_manager

if TYPE_CHECKING:
    from ..context import RuntimeContext
    from ..events import Event
    from ..result import WorkflowResult
    from ..run import Run
    from ..workflow import Workflow

__all__ = ["RunReport", "WorkflowTestRunner"]


@dataclass(frozen=True)
class RunReport:
    """What one run of :class:`WorkflowTestRunner` did.

    :param events: Every event of the stream, in order.
    :param counts: How many events of each type (``counts["tool-call-delta"]``); a missing
        type counts 0.
    :param state: The final state (``stream.get_workflow_state()``): status, steps, error.
    :param run: The run, to resume it when it suspended.
    """

    events: list[Event]
    counts: Counter[str]
    state: WorkflowResult
    run: Run

    @property
    def result(self) -> Any:
        """Return the workflow's output (``None`` unless the run succeeded)."""
        return self.state.result

    @property
    def status(self) -> str:
        """Return the run's final status: ``success``, ``failed``, ``suspended``, ..."""
        return self.state.status

    def types(self) -> list[str]:
        """Return the events' types, in order."""
        return [e.type for e in self.events]

    def wire(self) -> list[dict[str, Any]]:
        """Return the events in Mastra's JSON form."""
        return [e.to_wire() for e in self.events]


class WorkflowTestRunner:
    """Runs a committed workflow to its end (or its suspension) and reports on it.

    Each run gets a fresh plugin manager without entry points, so plugins installed on the
    machine do not change what a test sees, unless ``plugin_manager`` is given.

    :param workflow: The committed workflow to run.
    :param plugins: Extra plugins for each run's fresh manager (objects or built-in names).
    :param plugin_manager: A manager to use as is instead of a fresh one.
    """

    def __init__(
        self,
        workflow: Workflow,
        *,
        plugins: Iterable[object] = (),
        plugin_manager: PluginManager | None = None,
    ) -> None:
        """Prepare runs of ``workflow``."""
        self.workflow = workflow
        self.plugins = list(plugins)
        self.plugin_manager = plugin_manager

    async def run(
        self, input_data: Any = None, runtime_context: RuntimeContext | None = None
    ) -> RunReport:
        """Run the workflow on ``input_data`` and return its report.

        The stream closes when the run suspends, so a suspending workflow returns (with
        ``status == "suspended"``) instead of waiting for a resume nobody will send.
        """
        pm = self.plugin_manager or get_plugin_manager(load_entrypoints=False, plugins=self.plugins)
        run = await self.workflow.create_run(plugin_manager=pm)
        stream = run.stream(input_data, runtime_context, close_on_suspend=True)
        events = [event async for event in stream]
        state = await stream.get_workflow_state()
        return RunReport(events, Counter(e.type for e in events), state, run)

    run_sync = sync_twin(run)
