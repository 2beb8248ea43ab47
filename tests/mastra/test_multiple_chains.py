"""Mastra's ``describe('multiple chains')`` (workflow.test.ts line 3891)."""

from __future__ import annotations

import pytest

from stepstream import PluginManager, Step, Workflow

from .expect import ok, steps


@pytest.mark.asyncio
async def test_should_run_multiple_chains_in_parallel(pm: PluginManager) -> None:
    """workflow.test.ts line 3892."""

    def chain(wf_id: str, ids: list[int]) -> Workflow:
        wf = Workflow(id=wf_id)
        for i in ids:
            wf.then(Step(id=f"step{i}", execute=lambda ctx, i=i: {"result": f"success{i}"}))
        return wf.commit()

    wf = Workflow(id="test-workflow").parallel(
        [chain("nested-a", [1, 2, 3]), chain("nested-b", [4, 5])]
    )
    result = await (await wf.commit().create_run(plugin_manager=pm)).start({})
    assert steps(result)["nested-a"] == ok({}, {"result": "success3"})
    assert steps(result)["nested-b"] == ok({}, {"result": "success5"})
