"""The optional built-in ``metrics`` plugin."""

from __future__ import annotations

from typing import Any, cast

import pytest
from prometheus_client.parser import text_string_to_metric_families

from stepstream import (
    PluginLoadError,
    StepContext,
    Usage,
    Workflow,
    get_plugin_manager,
    hookimpl,
    step,
)
from stepstream.events import ToolCallDeltaEvent
from stepstream.plugins.metrics import MetricsPlugin
from stepstream.testing import ModelServer, ReplySequence, TextReply, ToolCallReply

from ..agents.test_agent import make_agent
from ..agents.test_tools import get_weather
from ..agents.test_usage import PRICES, TEXT_USAGE, TOOL_USAGE


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
async def test_counts_runs_steps_events_errors_and_durations() -> None:
    pm = get_plugin_manager(load_entrypoints=False, plugins=["metrics", ("faulty", Faulty())])
    metrics = pm.get_plugin("metrics")
    assert isinstance(metrics, MetricsPlugin) and pm.source_of("metrics") == "builtin"
    await (await Workflow(id="ok").then(talk).commit().create_run(plugin_manager=pm)).start({})
    await (await Workflow(id="ko").then(fail).commit().create_run(plugin_manager=pm)).start({})
    snap = metrics.snapshot()
    assert snap["runs"] == {"success": 1, "failed": 1}
    assert snap["steps"] == {"success": 1, "failed": 1}
    assert snap["tokens"] == {} and snap["cost"] == 0  # no model was used
    assert snap["events"]["tool-call-delta"] == 3 and snap["events"]["finish"] == 2
    assert snap["plugin_errors"] == {"faulty.before_step_run": 2}
    hist = snap["step_duration_seconds"]
    assert hist["count"] == 2 and hist["buckets"]["+Inf"] == 2 and hist["sum"] > 0
    steps = {(s["labels"]["workflow"], s["labels"]["step"], s["labels"]["status"]): s["value"]
             for s in snap["series"]["stepstream_steps_total"]}  # fmt: skip
    assert steps == {("ok", "talk", "success"): 1, ("ko", "fail", "failed"): 1}


@pytest.mark.asyncio
async def test_tokens_and_cost_by_workflow_step_and_model(model_server: ModelServer) -> None:
    model_server.responder = ReplySequence(
        [
            ToolCallReply("get_weather", ['{"city":"Oslo"}'], usage=TOOL_USAGE),
            TextReply(["Sun", "ny"], usage=cast(dict[str, int], TEXT_USAGE)),
        ]
    )
    pm = get_plugin_manager(load_entrypoints=False, plugins=["metrics"])
    agent = make_agent(model_server, tools=[get_weather])
    wf = Workflow(id="plan", prices=PRICES).then(step.from_agent(agent)).commit()
    result = await (await wf.create_run(plugin_manager=pm)).start({"prompt": "Oslo?"})
    assert result.status == "success"
    metrics = pm.get_plugin("metrics")
    snap = metrics.snapshot()
    assert snap["tokens"] == {"input": 50, "output": 7, "cached_input": 10, "reasoning": 1}
    assert snap["cost"] == pytest.approx(Usage.from_json(result.usage).cost)
    samples = parsed(metrics.render_prometheus())
    where = {"workflow": "plan", "step": "Weather Agent", "model": "mock-gpt"}
    for kind, n in (("input", 50), ("output", 7), ("cached_input", 10), ("reasoning", 1)):
        assert samples["stepstream_tokens_total", frozen({**where, "type": kind})] == n
    assert samples["stepstream_cost_total", frozen(where)] == pytest.approx(snap["cost"])
    assert samples["stepstream_model_response_duration_seconds_count", frozen(where)] == 2
    step_labels = frozen({"workflow": "plan", "step": "Weather Agent"})
    assert samples["stepstream_step_duration_seconds_count", step_labels] == 1


def frozen(labels: dict[str, str]) -> frozenset[tuple[str, str]]:
    return frozenset(labels.items())


def parsed(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample as Prometheus reads it (prometheus-client's parser is the reference)."""
    return {
        (s.name, frozen(s.labels)): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.mark.asyncio
async def test_prometheus_text_format() -> None:
    pm = get_plugin_manager(load_entrypoints=False, plugins=["metrics"])
    await (await Workflow(id="ok").then(talk).commit().create_run(plugin_manager=pm)).start({})
    text = pm.get_plugin("metrics").render_prometheus()
    assert text.endswith("\n")
    assert "# TYPE stepstream_runs_total counter" in text
    samples = parsed(text)
    assert samples["stepstream_runs_total", frozen({"workflow": "ok", "status": "success"})] == 1
    assert samples["stepstream_events_total", frozen({"type": "tool-call-delta"})] == 3
    inf = frozen({"workflow": "ok", "step": "talk", "le": "+Inf"})
    assert samples["stepstream_step_duration_seconds_bucket", inf] == 1
    # What Prometheus itself parses (prometheus-client's parser is the reference one).
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["stepstream_step_duration_seconds"].type == "histogram"
    buckets = [
        s.value for s in families["stepstream_step_duration_seconds"].samples
        if s.name.endswith("_bucket")
    ]  # fmt: skip
    assert buckets == sorted(buckets)  # cumulative


def test_each_plugin_has_its_own_registry() -> None:
    first, second = MetricsPlugin(), MetricsPlugin()
    first.on_plugin_error("p", "h")
    assert second.snapshot()["plugin_errors"] == {}
    assert first.snapshot()["plugin_errors"] == {"p.h": 1}


def test_unknown_builtin_name_is_a_clear_error() -> None:
    with pytest.raises(PluginLoadError, match="no built-in plugin named 'nope'"):
        get_plugin_manager(load_entrypoints=False, plugins=["nope"])
