"""Mastra's ``describe('Workflow results')`` (workflow.test.ts line 7396)."""

from __future__ import annotations

import pytest

from stepstream import PluginManager, Workflow

from .expect import ok, steps
from .nested import CounterSteps


@pytest.mark.asyncio
async def test_should_be_able_to_spec_out_workflow_result_via_variables(pm: PluginManager) -> None:
    """workflow.test.ts line 7397."""
    s = CounterSteps()
    wf_a = Workflow(id="nested-workflow-a").then(s.start).then(s.other).then(s.final).commit()
    wf = (
        Workflow(id="counter-workflow")
        .then(wf_a)
        .then(s.counted("last-step", {"success": True}))
        .commit()
    )
    result = await (await wf.create_run(plugin_manager=pm)).start({"startValue": 0})
    assert s.calls == {"start": 1, "other": 1, "final": 1, "last-step": 1}
    wire = steps(result)
    assert wire["nested-workflow-a"]["status"] == "success"
    assert wire["nested-workflow-a"]["output"] == {"finalValue": 26 + 1}
    assert wire["last-step"] == ok({"finalValue": 26 + 1}, {"success": True})
