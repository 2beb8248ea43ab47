"""The optional built-in ``metrics`` plugin."""

from __future__ import annotations

import re
from typing import Any

import pytest

from stepstream import PluginLoadError, StepContext, Workflow, get_plugin_manager, hookimpl, step
from stepstream.events import ToolCallDeltaEvent
from stepstream.plugins.metrics import MetricsPlugin


@step(id="talk")
async def talk(ctx: StepContext[Any]) -> Any:
    for word in ["a", "b", "c"]:
        await ctx.emit(
            ToolCallDeltaEvent,
            tool_call_id="t",
            tool_name="T",
            name="T",
            args={},
            args_text_delta=word,
        )
    return {}


@step(id="fail")
async def fail(ctx: StepContext[Any]) -> Any:
    raise ValueError("no")


class Faulty:
    @hookimpl
    def before_step_run(self) -> None:
        raise RuntimeError("faulty")


@pytest.mark.asyncio
async def test_counts_runs_steps_events_tokens_errors_and_durations() -> None:
    pm = get_plugin_manager(load_entrypoints=False, plugins=["metrics", ("faulty", Faulty())])
    metrics = pm.get_plugin("metrics")
    assert isinstance(metrics, MetricsPlugin) and pm.source_of("metrics") == "builtin"
    await (await Workflow(id="ok").then(talk).commit().create_run(plugin_manager=pm)).start({})
    await (await Workflow(id="ko").then(fail).commit().create_run(plugin_manager=pm)).start({})
    snap = metrics.snapshot()
    assert snap["runs"] == {"success": 1, "failed": 1}
    assert snap["steps"] == {"success": 1, "failed": 1}
    assert snap["tokens"] == 3
    assert snap["events"]["tool-call-delta"] == 3 and snap["events"]["finish"] == 2
    assert snap["plugin_errors"] == {"faulty.before_step_run": 2}
    hist = snap["step_duration_seconds"]
    assert hist["count"] == 2 and hist["buckets"]["+Inf"] == 2 and hist["sum"] > 0


@pytest.mark.asyncio
async def test_prometheus_text_format() -> None:
    pm = get_plugin_manager(load_entrypoints=False, plugins=["metrics"])
    await (await Workflow(id="ok").then(talk).commit().create_run(plugin_manager=pm)).start({})
    text = pm.get_plugin("metrics").render_prometheus()
    assert text.endswith("\n")
    assert "# TYPE stepstream_runs_total counter" in text
    assert 'stepstream_runs_total{status="success"} 1' in text
    assert 'stepstream_events_total{type="tool-call-delta"} 3' in text
    assert "stepstream_tokens_total 3" in text
    assert 'stepstream_step_duration_seconds_bucket{le="+Inf"} 1' in text
    assert "stepstream_step_duration_seconds_count 1" in text
    sample = re.compile(r'^stepstream_[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? [0-9.e+-]+$')
    for line in text.splitlines():
        assert line.startswith("# ") or sample.match(line), line
    buckets = [int(n) for n in re.findall(r'_bucket\{le="[^"]+"\} (\d+)', text)]
    assert buckets == sorted(buckets)  # cumulative


def test_unknown_builtin_name_is_a_clear_error() -> None:
    with pytest.raises(PluginLoadError, match="no built-in plugin named 'nope'"):
        get_plugin_manager(load_entrypoints=False, plugins=["nope"])
