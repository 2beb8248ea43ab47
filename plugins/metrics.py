"""The optional built-in ``metrics`` plugin: counters and a step-duration histogram.

Enable it with ``get_plugin_manager(plugins=["metrics"])`` and read it back with
``pm.get_plugin("metrics")``: :meth:`MetricsPlugin.snapshot` gives plain Python data and
:meth:`MetricsPlugin.render_prometheus` the Prometheus text exposition format. It counts runs
and steps by status, events by type, tokens streamed (``tool-call-delta`` events) and plugin
errors, and times each step.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from stepstream.events import Event
from stepstream.hookspecs import hookimpl
from stepstream.result import WorkflowResult

__all__ = ["DURATION_BUCKETS", "MetricsPlugin"]

DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0)
"""Upper bounds (seconds) of the step-duration histogram's buckets; +Inf is implied."""


class MetricsPlugin:
    """Counts what happens in every run the plugin manager serves."""

    def __init__(self) -> None:
        self.runs: Counter[str] = Counter()
        self.steps: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self.plugin_errors: Counter[tuple[str, str]] = Counter()
        self.tokens = 0
        self.bucket_counts = [0] * (len(DURATION_BUCKETS) + 1)
        self.duration_sum = 0.0
        self._started: dict[tuple[str, str], float] = {}

    @hookimpl
    def on_event(self, event: Event) -> None:
        """Count the event by type (and deltas as tokens)."""
        self.events[event.type] += 1
        if event.type == "tool-call-delta":
            self.tokens += 1

    @hookimpl
    def before_step_run(self, run_id: str, step_id: str) -> None:
        """Start the step's clock."""
        self._started[(run_id, step_id)] = time.perf_counter()

    @hookimpl
    def after_step_run(self, run_id: str, step_id: str, status: str) -> None:
        """Count the step by status and record its duration."""
        self.steps[status] += 1
        started = self._started.pop((run_id, step_id), None)
        if started is None:
            return
        seconds = time.perf_counter() - started
        self.duration_sum += seconds
        for i, bound in enumerate(DURATION_BUCKETS):
            if seconds <= bound:
                self.bucket_counts[i] += 1
                break
        else:
            self.bucket_counts[-1] += 1

    @hookimpl
    def after_workflow_run(self, result: WorkflowResult) -> None:
        """Count the run by how its execution ended."""
        self.runs[result.status] += 1

    @hookimpl
    def on_plugin_error(self, plugin_name: str, hook_name: str) -> None:
        """Count a plugin's failure."""
        self.plugin_errors[(plugin_name, hook_name)] += 1

    def snapshot(self) -> dict[str, Any]:
        """The metrics as plain data."""
        cumulative, total = [], 0
        for count in self.bucket_counts:
            total += count
            cumulative.append(total)
        return {
            "runs": dict(self.runs),
            "steps": dict(self.steps),
            "events": dict(self.events),
            "tokens": self.tokens,
            "plugin_errors": {f"{p}.{h}": n for (p, h), n in self.plugin_errors.items()},
            "step_duration_seconds": {
                "buckets": dict(
                    zip([*map(str, DURATION_BUCKETS), "+Inf"], cumulative, strict=True)
                ),
                "sum": self.duration_sum,
                "count": total,
            },
        }

    def render_prometheus(self) -> str:
        """The metrics in the Prometheus text exposition format (version 0.0.4)."""
        out: list[str] = []

        def family(name: str, kind: str, doc: str) -> None:
            out.append(f"# HELP stepstream_{name} {doc}")
            out.append(f"# TYPE stepstream_{name} {kind}")

        family("runs_total", "counter", "Run executions that ended, by status.")
        for status, n in sorted(self.runs.items()):
            out.append(f'stepstream_runs_total{{status="{_label(status)}"}} {n}')
        family("steps_total", "counter", "Step executions that ended, by status.")
        for status, n in sorted(self.steps.items()):
            out.append(f'stepstream_steps_total{{status="{_label(status)}"}} {n}')
        family("events_total", "counter", "Stream events, by type.")
        for kind, n in sorted(self.events.items()):
            out.append(f'stepstream_events_total{{type="{_label(kind)}"}} {n}')
        family("tokens_total", "counter", "Text chunks streamed by agent steps.")
        out.append(f"stepstream_tokens_total {self.tokens}")
        family("plugin_errors_total", "counter", "Hook implementations that raised.")
        for (plugin, hook), n in sorted(self.plugin_errors.items()):
            out.append(
                f'stepstream_plugin_errors_total{{plugin="{_label(plugin)}",'
                f'hook="{_label(hook)}"}} {n}'
            )
        family("step_duration_seconds", "histogram", "How long steps ran.")
        data = self.snapshot()["step_duration_seconds"]
        for bound, n in data["buckets"].items():
            out.append(f'stepstream_step_duration_seconds_bucket{{le="{bound}"}} {n}')
        out.append(f"stepstream_step_duration_seconds_sum {data['sum']}")
        out.append(f"stepstream_step_duration_seconds_count {data['count']}")
        return "\n".join(out) + "\n"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
