"""Time travel: a stored run forked at one of its steps runs again from there, and a workflow
that no longer matches the stored run is refused with a clear error."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from stepstream import (
    InputValidationError,
    PluginManager,
    RunClaimedError,
    RunStateError,
    StepContext,
    TimeTravelError,
    Workflow,
    step,
    time_travel,
)
from stepstream.storage.sqlite import SQLiteStorage

calls: Counter[str] = Counter()


class Num(BaseModel):
    n: int


@step(id="first", input_schema=Num, output_schema=Num)
def first(ctx: StepContext[Num]) -> Num:
    calls["first"] += 1
    return Num(n=ctx.input_data.n + 1)


@step(id="second", input_schema=Num, output_schema=Num)
def second(ctx: StepContext[Num]) -> Num:
    calls["second"] += 1
    return Num(n=ctx.input_data.n * 10)


@step(id="third", input_schema=Num, output_schema=Num)
def third(ctx: StepContext[Num]) -> Num:
    calls["third"] += 1
    return Num(n=ctx.input_data.n + 3)


@step(id="side")
def side(ctx: StepContext[Any]) -> Any:
    calls["side"] += 1
    return {"side": True}


def chain(store: SQLiteStorage, *steps: Any) -> Workflow:
    wf = Workflow(id="chain", input_schema=Num, storage=store)
    for s in steps or (first, second, third):
        wf.then(s)
    return wf.commit()


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStorage:
    calls.clear()
    return SQLiteStorage(tmp_path / "runs.db")


async def _source(wf: Workflow, pm: PluginManager, data: Any = None) -> str:
    run = await wf.create_run(plugin_manager=pm)
    result = await run.start(data if data is not None else {"n": 1})
    assert result.status == "success"
    calls.clear()
    return run.run_id


@pytest.mark.asyncio
async def test_a_fork_keeps_the_earlier_steps_as_stored_and_runs_from_the_chosen_one(
    store: SQLiteStorage, pm: PluginManager
) -> None:
    wf = chain(store)
    source = await _source(wf, pm)
    stored = await store.load_run(source)
    assert stored is not None

    fork = await time_travel(wf, source, step="second", plugin_manager=pm)
    result = await fork.wait()

    assert fork.run_id != source
    assert calls == {"second": 1, "third": 1}  # `first` is not executed again
    assert result.status == "success" and result.result == {"n": 23}
    assert list(result.steps) == ["first", "second", "third"]
    assert result.steps["first"].started_at == stored.state["steps"]["first"]["started_at"]
    events = [e async for e in fork.stream(after_seq=-1)]
    shape = [(e.type, getattr(e, "step_id", None)) for e in events]
    assert shape[0] == ("start", None) and shape[-1] == ("finish", None)
    assert [i for t, i in shape if t == "step-start"] == ["second", "third"]
    again = await store.load_run(fork.run_id)
    assert again is not None and again.status == "success"
    assert list(again.state["steps"]) == ["first", "second", "third"]
    assert again.meta["forkedFrom"] == {"runId": source, "stepId": "second"}
    left = await store.load_run(source)
    assert left is not None and left.state == stored.state  # the source is untouched
    await store.close()


@pytest.mark.asyncio
async def test_an_edited_input_is_validated_and_used(
    store: SQLiteStorage, pm: PluginManager
) -> None:
    wf = chain(store)
    source = await _source(wf, pm)
    runs_before = len(await store.list_runs())
    with pytest.raises(InputValidationError, match="second"):
        await time_travel(wf, source, step=second, input_data={"n": "many"}, plugin_manager=pm)
    assert len(await store.list_runs()) == runs_before  # nothing was made
    assert calls == {}

    fork = await time_travel(wf, source, step=second, input_data={"n": 5}, plugin_manager=pm)
    result = await fork.wait()
    assert result.steps["second"].payload == {"n": 5}
    assert result.result == {"n": 53}
    await store.close()


@pytest.mark.asyncio
async def test_a_workflow_built_again_matches_its_stored_run_map_steps_included(
    store: SQLiteStorage, pm: PluginManager
) -> None:
    def build() -> Workflow:  # as a new process importing the module would
        return (
            Workflow(id="mapped", input_schema=Num, storage=store)
            .then(first)
            .map(lambda ctx: {"n": ctx.input_data.n * 2})
            .then(third)
            .commit()
        )

    source = await _source(build(), pm)
    rebuilt = build()
    fork = await time_travel(rebuilt, source, step="third", plugin_manager=pm)
    result = await fork.wait()
    assert calls == {"third": 1}
    assert result.result == {"n": 7}
    mapped = [s for s in result.steps if s.startswith("mapping_")]
    assert len(mapped) == 1
    await store.close()


@pytest.mark.asyncio
async def test_a_parallel_sibling_that_succeeded_is_kept(
    store: SQLiteStorage, pm: PluginManager
) -> None:
    wf = Workflow(id="par", input_schema=Num, storage=store).parallel([second, side]).commit()
    source = await _source(wf, pm)
    fork = await time_travel(wf, source, step="second", plugin_manager=pm)
    result = await fork.wait()
    assert calls == {"second": 1}
    assert result.result == {"second": {"n": 10}, "side": {"side": True}}
    await store.close()


@pytest.mark.asyncio
async def test_a_nested_workflow_before_the_step_is_copied_whole(
    store: SQLiteStorage, pm: PluginManager
) -> None:
    inner = Workflow(id="inner", input_schema=Num, output_schema=Num).then(first).commit()
    wf = Workflow(id="outer", input_schema=Num, storage=store).then(inner).then(third).commit()
    source = await _source(wf, pm)
    fork = await time_travel(wf, source, step="third", plugin_manager=pm)
    result = await fork.wait()
    assert calls == {"third": 1}
    assert result.result == {"n": 5}
    stored = await store.load_run(fork.run_id)
    assert stored is not None
    assert stored.state["nested"]["inner"]["steps"]["first"]["output"] == {"n": 2}
    await store.close()


@pytest.mark.asyncio
async def test_mismatched_workflows_and_steps_that_never_ran_are_refused(
    store: SQLiteStorage, pm: PluginManager
) -> None:
    source = await _source(chain(store, first, second), pm)
    cases = {
        "has no top-level step 'nope'": (chain(store), "nope"),
        "step 'third' never ran": (chain(store), "third"),
        "has a step 'second' that the workflow no longer has": (
            chain(store, first, third),
            "first",
        ),
        "step 'first' ran before 'second' but now comes after it": (
            chain(store, second, first),
            "second",
        ),
        "step 'side', which comes before it, never ran": (
            chain(store, first, side, second),
            "second",
        ),
    }
    for message, (wf, at) in cases.items():
        with pytest.raises(TimeTravelError, match=message) as caught:
            await time_travel(wf, source, step=at, plugin_manager=pm)
        assert caught.value.run_id == source and caught.value.step_id == at
    mapped = Workflow(id="chain", input_schema=Num, storage=store).then(first)
    mapped = mapped.map(lambda ctx: ctx.input_data).then(second).commit()
    other = await _source(mapped, pm)
    map_id = next(
        s.id
        for n in mapped.nodes
        for s in [getattr(n, "step", None)]
        if s and s.id.startswith("mapping_")
    )
    with pytest.raises(TimeTravelError, match="takes no input of its own"):
        await time_travel(mapped, other, step=map_id, input_data={"n": 1}, plugin_manager=pm)
    assert calls == {}
    await store.close()


@pytest.mark.asyncio
async def test_a_fork_at_a_failed_step_runs_it_again(
    store: SQLiteStorage, pm: PluginManager
) -> None:
    flaky = {"fail": True}

    @step(id="flaky", input_schema=Num, output_schema=Num)
    def flaky_step(ctx: StepContext[Num]) -> Num:
        if flaky["fail"]:
            raise RuntimeError("not yet")
        return Num(n=ctx.input_data.n)

    wf = chain(store, first, flaky_step, third)
    run = await wf.create_run(plugin_manager=pm)
    assert (await run.start({"n": 1})).status == "failed"
    flaky["fail"] = False
    calls.clear()
    fork = await time_travel(wf, run.run_id, step="flaky", plugin_manager=pm)
    result = await fork.wait()
    assert result.status == "success" and result.result == {"n": 5}
    assert calls == {"third": 1}
    await store.close()


@pytest.mark.asyncio
async def test_unknown_runs_other_workflows_and_taken_ids_are_refused(
    store: SQLiteStorage, pm: PluginManager
) -> None:
    wf = chain(store)
    source = await _source(wf, pm)
    with pytest.raises(RunStateError, match="is unknown"):
        await time_travel(wf, "nope", step="first", plugin_manager=pm)
    other = Workflow(id="other", storage=store).then(first).commit()
    with pytest.raises(RunStateError, match="of workflow 'chain'"):
        await time_travel(other, source, step="first", plugin_manager=pm)
    memory = Workflow(id="chain").then(first).commit()
    with pytest.raises(RunStateError, match="needs a storage"):
        await time_travel(memory, source, step="first", plugin_manager=pm)
    with pytest.raises(RunClaimedError):
        await time_travel(wf, source, step="first", new_run_id=source, plugin_manager=pm)
    assert (await wf.create_run(source)).status == "success"  # the stored run, not a ghost
    assert calls == {}
    await store.close()


@pytest.mark.asyncio
async def test_a_step_inside_a_nested_workflow_is_named_by_its_path(
    store: SQLiteStorage, pm: PluginManager, recorder: Any
) -> None:
    def build(*inner_steps: Any) -> Workflow:
        inner = Workflow(id="inner", input_schema=Num, output_schema=Num)
        for s in inner_steps:
            inner.then(s)
        inner.commit()
        return (
            Workflow(id="outer", input_schema=Num, storage=store).then(inner).then(third).commit()
        )

    wf = build(first, second)
    source = await _source(wf, pm)
    recorder.events.clear()
    fork = await time_travel(wf, source, step=["inner", "second"], plugin_manager=pm)
    result = await fork.wait()
    assert calls == {"second": 1, "third": 1}  # the inner `first` is not executed again
    assert result.result == {"n": 23}
    started = [e.step_id for e in recorder.events if e.type == "step-start"]
    assert started == ["inner", "inner.second", "third"]
    stored = await store.load_run(fork.run_id)
    assert stored is not None and stored.meta["forkedFrom"]["stepId"] == "inner.second"
    assert list(stored.state["nested"]["inner"]["steps"]) == ["first", "second"]

    edited = await time_travel(
        wf, source, step=["inner", second], input_data={"n": 4}, plugin_manager=pm
    )
    assert (await edited.wait()).result == {"n": 43}
    for path, message in [
        (["inner", "nope"], "workflow 'inner' has no step 'nope'"),
        (["third", "x"], "step 'third' of workflow 'outer' is not a nested workflow"),
    ]:
        with pytest.raises(TimeTravelError, match=message):
            await time_travel(wf, source, step=path, plugin_manager=pm)
    changed = build(second, first)
    with pytest.raises(TimeTravelError, match="'first' ran before 'second'") as caught:
        await time_travel(changed, source, step=["inner", "second"], plugin_manager=pm)
    assert caught.value.step_id == "inner.second"
    await store.close()
