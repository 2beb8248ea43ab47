"""Mastra's ``describe('Workflow Runs')`` (workflow.test.ts line 5797). Mastra asks the
workflow (``getWorkflowRuns()``, ``getWorkflowRunById()``); stepstream asks its storage
(``list_runs(workflow_id=...)``, ``load_run(run_id)``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stepstream import PluginManager, Step, Workflow
from stepstream.storage.sqlite import SQLiteStorage


def _workflow(store: SQLiteStorage) -> Workflow:
    return (
        Workflow(id="test-workflow", storage=store)
        .then(Step(id="step1", execute=lambda ctx: {"result": "success1"}))
        .then(Step(id="step2", execute=lambda ctx: {"result": "success2"}))
        .commit()
    )


@pytest.mark.asyncio
async def test_should_return_empty_result_when_mastra_is_not_initialized(tmp_path: Path) -> None:
    """workflow.test.ts line 5804 (a storage that holds no run)."""
    store = SQLiteStorage(tmp_path / "runs.db")
    assert await store.list_runs(workflow_id="test") == []
    await store.close()


@pytest.mark.asyncio
async def test_should_get_workflow_runs_from_storage(tmp_path: Path, pm: PluginManager) -> None:
    """workflow.test.ts line 5810."""
    store = SQLiteStorage(tmp_path / "runs.db")
    wf = _workflow(store)
    run1 = await wf.create_run(plugin_manager=pm)
    await run1.start({})
    run2 = await wf.create_run(plugin_manager=pm)
    await run2.start({})
    runs = await store.list_runs(workflow_id="test-workflow")
    assert sorted(r.run_id for r in runs) == sorted([run1.run_id, run2.run_id])
    assert {r.workflow_id for r in runs} == {"test-workflow"}
    for r in runs:
        assert await store.load_run(r.run_id) is not None
    await store.close()


@pytest.mark.asyncio
async def test_should_get_workflow_run_by_id_from_storage(
    tmp_path: Path, pm: PluginManager
) -> None:
    """workflow.test.ts line 5854."""
    store = SQLiteStorage(tmp_path / "runs.db")
    wf = _workflow(store)
    run1 = await wf.create_run(plugin_manager=pm)
    await run1.start({})
    [summary] = await store.list_runs(workflow_id="test-workflow")
    assert summary.run_id == run1.run_id and summary.workflow_id == "test-workflow"
    snapshot = await store.load_run(run1.run_id)
    assert snapshot is not None and snapshot.run_id == run1.run_id
    assert snapshot.workflow_id == "test-workflow" and snapshot.status == "success"
    assert snapshot.result == {"result": "success2"}
    await store.close()
