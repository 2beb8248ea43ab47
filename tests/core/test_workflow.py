"""Building and committing workflows: the graph checks and the step decorator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from stepstream import (
    Step,
    StepContext,
    Workflow,
    WorkflowDefinitionError,
    get_plugin_manager,
    step,
)
from stepstream.storage.sqlite import SQLiteStorage


class A(BaseModel):
    a: int


class B(BaseModel):
    b: str


class AB(BaseModel):
    a: int
    b: str = "x"


class AString(BaseModel):
    a: str


@step
async def make_a(ctx: StepContext[Any]) -> A:
    return A(a=1)


@step
async def needs_b(ctx: StepContext[B]) -> B:
    return ctx.input_data


@step
async def needs_ab(ctx: StepContext[AB]) -> AB:
    return ctx.input_data


@step
async def needs_a_string(ctx: StepContext[AString]) -> AString:
    return ctx.input_data


def test_decorator_infers_id_and_schemas() -> None:
    assert make_a.id == "make_a"
    assert make_a.input_schema is None and make_a.output_schema is A
    assert needs_b.input_schema is B and needs_b.output_schema is B

    @step(id="custom", input_schema=A, output_schema=B, description="Explicit wins.")
    def custom(ctx: StepContext[AB]) -> AB:
        return ctx.input_data

    assert (custom.id, custom.input_schema, custom.output_schema) == ("custom", A, B)
    assert custom.description == "Explicit wins."
    assert not custom.is_async and make_a.is_async


def test_step_rejects_bad_definitions() -> None:
    with pytest.raises(WorkflowDefinitionError, match="non-empty string"):
        Step(id="")
    with pytest.raises(WorkflowDefinitionError, match="input_schema must be a pydantic"):
        Step(id="x", input_schema=dict)  # type: ignore[arg-type]
    with pytest.raises(WorkflowDefinitionError, match="no as_step"):
        step.from_agent(object())


def test_empty_workflow_is_rejected() -> None:
    with pytest.raises(WorkflowDefinitionError, match="'wf' has no steps"):
        Workflow(id="wf").commit()


def test_duplicate_step_ids_are_rejected() -> None:
    with pytest.raises(WorkflowDefinitionError, match="duplicate step id 'make_a'"):
        Workflow(id="wf").then(make_a).parallel([needs_b, make_a]).commit()


def test_missing_field_between_consecutive_steps_is_rejected() -> None:
    with pytest.raises(WorkflowDefinitionError, match=r"B with fields \['b'\].*'make_a' \(A\)"):
        Workflow(id="wf").then(make_a).then(needs_b).commit()


def test_type_mismatch_between_consecutive_steps_is_rejected() -> None:
    with pytest.raises(WorkflowDefinitionError, match=r"AString\.a of type 'string'"):
        Workflow(id="wf").then(make_a).then(needs_a_string).commit()


def test_workflow_input_is_checked_against_the_first_step() -> None:
    with pytest.raises(WorkflowDefinitionError, match="the workflow input"):
        Workflow(id="wf", input_schema=A).then(needs_b).commit()


def test_compatible_schemas_and_undeclared_ones_pass() -> None:
    # Optional fields need not be produced; a schema-less step is never checked.
    Workflow(id="wf").then(make_a).then(needs_ab).commit()
    Workflow(id="wf2").then(make_a).map(lambda ctx: {"b": "x"}).then(needs_b).commit()


def test_parallel_output_is_checked_by_step_ids() -> None:
    class Keys(BaseModel):
        make_a: A
        other: A

    @step
    async def join(ctx: StepContext[Keys]) -> Keys:
        return ctx.input_data

    with pytest.raises(WorkflowDefinitionError, match=r"fields \['other'\]"):
        Workflow(id="wf").parallel([make_a]).then(join).commit()


def test_uncommitted_nested_workflow_is_rejected() -> None:
    inner = Workflow(id="inner").then(make_a)
    with pytest.raises(WorkflowDefinitionError, match="nested workflow 'inner' is not committed"):
        Workflow(id="outer").then(inner).commit()


def test_committed_workflow_is_frozen_and_uncommitted_cannot_run() -> None:
    wf = Workflow(id="wf").then(make_a)
    with pytest.raises(WorkflowDefinitionError, match="must be committed"):
        wf.create_run_sync()
    wf.commit()
    with pytest.raises(WorkflowDefinitionError, match="is committed"):
        wf.then(needs_b)


def test_builder_arguments_are_checked() -> None:
    wf = Workflow(id="wf")
    with pytest.raises(WorkflowDefinitionError, match="not a Step"):
        wf.then(lambda ctx: ctx)  # type: ignore[arg-type]
    with pytest.raises(WorkflowDefinitionError, match="concurrency must be >= 1"):
        wf.foreach(make_a, concurrency=0)
    with pytest.raises(WorkflowDefinitionError, match=r"\(condition, step\) pairs"):
        wf.branch([make_a])  # type: ignore[list-item]
    with pytest.raises(WorkflowDefinitionError, match="needs steps"):
        wf.parallel([])
    with pytest.raises(WorkflowDefinitionError, match="source for 'x' must be a dict"):
        wf.map({"x": 1})


def test_unresolvable_annotation_is_a_clear_error() -> None:
    with pytest.raises(WorkflowDefinitionError, match="cannot resolve its annotations"):

        @step
        async def broken(ctx: StepContext[Undefined]) -> Any:  # type: ignore[name-defined]  # noqa: F821
            return None


@pytest.mark.asyncio
async def test_a_run_id_that_is_not_a_string_is_refused_before_any_event(
    tmp_path: Path,
) -> None:
    # The engine builds its events with a trusted constructor: a run id that pydantic would
    # have refused must be refused at the door, not reach the wire (`{"runId": 123}`).
    wf = Workflow(id="wf").then(make_a).commit()
    store = SQLiteStorage(tmp_path / "runs.db")
    for bad in (123, b"id", ("id",)):
        with pytest.raises(TypeError, match="run_id must be a string"):
            await wf.create_run(bad)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="run_id must be a string"):
            await wf.create_run(bad, storage=store)  # type: ignore[arg-type]
    assert await store.list_runs() == []
    run = await wf.create_run("a-string")
    events = await _events(run)
    assert events[0].to_wire()["payload"] == {"runId": "a-string"}
    await store.close()


async def _events(run: Any) -> list[Any]:
    return [event async for event in run.stream({})]


def test_the_sync_twin_refuses_a_run_id_that_is_not_a_string() -> None:
    wf = Workflow(id="wf").then(make_a).commit()
    for bad in (123, b"id", ("id",)):
        with pytest.raises(TypeError, match="run_id must be a string"):
            wf.create_run_sync(bad)  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_a_workflow_lets_its_ended_runs_go_without_a_pass_per_new_run() -> None:
    # A pass over every live run at each create_run made 10,000 concurrent runs quadratic;
    # ended runs now go in a sweep each time the workflow's map of runs doubles.
    @step(id="one")
    async def one(ctx: StepContext[Any]) -> int:
        return 1

    wf = Workflow(id="many").then(one).commit()
    pm = get_plugin_manager(load_entrypoints=False)
    ended = []
    for _ in range(300):
        run = await wf.create_run(plugin_manager=pm)
        assert (await run.start({})).status == "success"
        ended.append(run.run_id)
        assert len(wf._runs) <= 128  # never more than twice what a sweep kept, or its floor
    live = [await wf.create_run(plugin_manager=pm) for _ in range(100)]
    assert all(wf._runs[r.run_id] is r for r in live)  # live runs are kept
    # An ended run's id names a new run (or the stored one), never the ended copy.
    again = await wf.create_run(ended[-1], plugin_manager=pm)
    assert again.status == "pending" and again.run_id == ended[-1]
