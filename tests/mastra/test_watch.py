"""Mastra's ``describe('Watch')`` (workflow.test.ts line 4149): ``run.watch()``'s default
``watch`` records."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stepstream import PluginManager, Step, Workflow

from .expect import NUMBER, ok, steps


def _two_steps() -> Workflow:
    return (
        Workflow(id="test-workflow")
        .then(Step(id="step1", execute=lambda ctx: {"result": "success1"}))
        .then(Step(id="step2", execute=lambda ctx: {"result": "success2"}))
        .commit()
    )


def _check_records(records: list[Any], result: Any) -> None:
    assert len(records) == 5
    first = ok({}, {"result": "success1"})
    assert records[1] == {
        "type": "watch",
        "payload": {
            "currentStep": {"id": "step1", **first},
            "workflowState": {
                "status": "running",
                "steps": {"input": {}, "step1": first},
                "result": None,
                "error": None,
            },
        },
        "eventTimestamp": NUMBER,
    }
    second = ok({"result": "success1"}, {"result": "success2"})
    assert records[-1] == {
        "type": "watch",
        "payload": {
            "workflowState": {
                "status": "success",
                "steps": {"input": {}, "step1": first, "step2": second},
                "result": {"result": "success2"},
                "error": None,
            }
        },
        "eventTimestamp": NUMBER,
    }
    assert steps(result)["step1"] == first and steps(result)["step2"] == second


@pytest.mark.asyncio
async def test_should_watch_workflow_state_changes_and_call_on_transition(
    pm: PluginManager,
) -> None:
    """workflow.test.ts line 4150."""
    records: list[Any] = []
    run = await _two_steps().create_run(plugin_manager=pm)
    run.watch(lambda data: records.append(json.loads(json.dumps(data))))
    _check_records(records, await run.start({}))


@pytest.mark.asyncio
async def test_should_watch_state_changes_and_call_on_transition_when_attaching_from_separate_run(
    pm: PluginManager,
) -> None:
    """workflow.test.ts line 4265 ('should watch workflow state changes and call onTransition
    when attaching from separate run')."""
    records: list[Any] = []
    wf = _two_steps()
    run = await wf.create_run(plugin_manager=pm)
    run2 = await wf.create_run(run_id=run.run_id)
    run2.watch(lambda data: records.append(json.loads(json.dumps(data))))
    _check_records(records, await run.start({}))


@pytest.mark.asyncio
async def test_should_unsubscribe_from_transitions_when_unwatch_is_called(
    pm: PluginManager,
) -> None:
    """workflow.test.ts line 4380 (each watcher is for one run only)."""
    wf = _two_steps()
    first: list[Any] = []
    second: list[Any] = []
    run = await wf.create_run(plugin_manager=pm)
    run.watch(first.append)
    run.watch(second.append)
    await run.start({})
    assert (len(first), len(second)) == (5, 5)
    run2 = await wf.create_run(plugin_manager=pm)
    run2.watch(second.append)
    await run2.start({})
    assert (len(first), len(second)) == (5, 10)
    run3 = await wf.create_run(plugin_manager=pm)
    run3.watch(first.append)
    await run3.start({})
    assert (len(first), len(second)) == (10, 10)
