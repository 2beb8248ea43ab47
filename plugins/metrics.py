"""The optional built-in ``metrics`` plugin: Prometheus counters and histograms of every run.

It needs the extra ``stepstream[metrics]`` (``prometheus-client``). Enable it with
``get_plugin_manager(plugins=["metrics"])`` and read it back with ``pm.get_plugin("metrics")``:
:meth:`MetricsPlugin.render_prometheus` gives the text exposition format (what a ``/metrics``
route serves), :meth:`MetricsPlugin.snapshot` plain Python data. Each plugin keeps its own
``prometheus_client.CollectorRegistry`` (``plugin.registry``), never the global one, so two
managers never mix their counts; register it with your own exporter if you have one.

Families (``workflow`` is the top-level workflow's id, ``step`` the step's stream id, nested
steps ``outer.inner``; ``model`` the model asked for):

* ``stepstream_runs_total{workflow,status}``: run executions that ended;
* ``stepstream_steps_total{workflow,step,status}``: step executions that ended;
* ``stepstream_step_duration_seconds{workflow,step}``: how long steps ran (histogram);
* ``stepstream_tokens_total{workflow,step,model,type}``: model tokens by ``type``
  (``input``, ``output``, ``cached_input``, ``reasoning``; cached input tokens are part of
  input, reasoning tokens part of output, as providers count them);
* ``stepstream_cost_total{workflow,step,model}``: their cost by the workflow's price table
  (only priced responses);
* ``stepstream_model_response_duration_seconds{workflow,step,model}``: from each model
  request to the end of its response (histogram);
* ``stepstream_events_total{type}``: stream events by type;
* ``stepstream_plugin_errors_total{plugin,hook}``: hook implementations that raised.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from stepstream.events import Event, StepUsageEvent
from stepstream.hookspecs import hookimpl
from stepstream.result import WorkflowResult

__all__ = ["DURATION_BUCKETS", "MetricsPlugin"]

DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0)
"""Upper bounds (seconds) of the duration histograms' buckets; +Inf is implied."""

_TOKEN_TYPES = (
    ("input", "input_tokens"),
    ("output", "output_tokens"),
    ("cached_input", "cached_input_tokens"),
    ("reasoning", "reasoning_tokens"),
)


class MetricsPlugin:
    """Counts what happens in every run the plugin manager serves."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.runs = Counter(
            "stepstream_runs", "Run executions that ended.", ["workflow", "status"], registry=r
        )
        self.steps = Counter(
            "stepstream_steps",
            "Step executions that ended.",
            ["workflow", "step", "status"],
            registry=r,
        )
        self.step_duration = Histogram(
            "stepstream_step_duration_seconds",
            "How long steps ran.",
            ["workflow", "step"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "stepstream_tokens",
            "Model tokens, by type (input, output, cached_input, reasoning).",
            ["workflow", "step", "model", "type"],
            registry=r,
        )
        self.cost = Counter(
            "stepstream_cost",
            "Cost of model tokens by the workflow's price table (its currency).",
            ["workflow", "step", "model"],
            registry=r,
        )
        self.response_duration = Histogram(
            "stepstream_model_response_duration_seconds",
            "From a model request to the end of its response.",
            ["workflow", "step", "model"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.events = Counter("stepstream_events", "Stream events, by type.", ["type"], registry=r)
        self.plugin_errors = Counter(
            "stepstream_plugin_errors",
            "Hook implementations that raised.",
            ["plugin", "hook"],
            registry=r,
        )
        # The hot path (every event) skips the label lookup of prometheus-client.
        self._event_counters: dict[str, Any] = {}
        self._workflows: dict[str, str] = {}
        self._started: dict[tuple[str, str], float] = {}

    def _workflow(self, run_id: str) -> str:
        return self._workflows.get(run_id, "")

    @hookimpl
    def before_workflow_run(self, run_id: str, workflow_id: str) -> None:
        """Remember the run's workflow, for the labels of its steps."""
        self._workflows[run_id] = workflow_id

    @hookimpl
    def on_event(self, event: Event) -> None:
        """Count the event by type; count a ``step-usage`` event's tokens and cost."""
        counter = self._event_counters.get(event.type)
        if counter is None:
            counter = self._event_counters[event.type] = self.events.labels(event.type)
        counter.inc()
        if isinstance(event, StepUsageEvent):
            labels = (self._workflow(event.run_id), event.step_id, event.model)
            for kind, name in _TOKEN_TYPES:
                self.tokens.labels(*labels, kind).inc(getattr(event, name))
            if event.cost is not None:
                self.cost.labels(*labels).inc(event.cost)
            seconds = max(0, event.ended_at - event.started_at) / 1000
            self.response_duration.labels(*labels).observe(seconds)

    @hookimpl
    def before_step_run(self, run_id: str, step_id: str) -> None:
        """Start the step's clock."""
        self._started[(run_id, step_id)] = time.perf_counter()

    @hookimpl
    def after_step_run(self, run_id: str, step_id: str, status: str) -> None:
        """Count the step by status and record its duration."""
        workflow = self._workflow(run_id)
        self.steps.labels(workflow, step_id, status).inc()
        started = self._started.pop((run_id, step_id), None)
        if started is not None:
            self.step_duration.labels(workflow, step_id).observe(time.perf_counter() - started)

    @hookimpl
    def after_workflow_run(self, run_id: str, workflow_id: str, result: WorkflowResult) -> None:
        """Count the run by how its execution ended."""
        self.runs.labels(workflow_id, result.status).inc()
        self._workflows.pop(run_id, None)

    @hookimpl
    def on_plugin_error(self, plugin_name: str, hook_name: str) -> None:
        """Count a plugin's failure."""
        self.plugin_errors.labels(plugin_name, hook_name).inc()

    # -- reading ------------------------------------------------------------------------------

    def render_prometheus(self) -> str:
        """The metrics in the Prometheus text exposition format (version 0.0.4)."""
        return generate_latest(self.registry).decode()

    def snapshot(self) -> dict[str, Any]:
        """The metrics as plain data: totals by the main label of each family, and every
        labelled sample under ``series`` (by sample name)."""
        series: dict[str, list[dict[str, Any]]] = {}
        for family in self.registry.collect():
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                series.setdefault(sample.name, []).append(
                    {"labels": dict(sample.labels), "value": sample.value}
                )

        def total(name: str, label: str) -> dict[str, float]:
            out: dict[str, float] = {}
            for s in series.get(name, []):
                key = s["labels"][label]
                out[key] = out.get(key, 0) + s["value"]
            return out

        buckets: dict[str, float] = {}
        for s in series.get("stepstream_step_duration_seconds_bucket", []):
            bound = s["labels"]["le"]
            buckets[bound] = buckets.get(bound, 0) + s["value"]
        errors = {
            f"{s['labels']['plugin']}.{s['labels']['hook']}": s["value"]
            for s in series.get("stepstream_plugin_errors_total", [])
        }
        return {
            "runs": total("stepstream_runs_total", "status"),
            "steps": total("stepstream_steps_total", "status"),
            "events": total("stepstream_events_total", "type"),
            "tokens": total("stepstream_tokens_total", "type"),
            "cost": sum(s["value"] for s in series.get("stepstream_cost_total", [])),
            "plugin_errors": errors,
            "step_duration_seconds": {
                "buckets": buckets,
                "sum": sum(
                    s["value"] for s in series.get("stepstream_step_duration_seconds_sum", [])
                ),
                "count": sum(
                    s["value"] for s in series.get("stepstream_step_duration_seconds_count", [])
                ),
            },
            "series": series,
        }
