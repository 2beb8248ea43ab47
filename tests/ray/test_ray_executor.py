"""Steps on a real local Ray cluster, with the run's stream intact."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from stepstream import (
    Event,
    PluginManager,
    RuntimeContext,
    StepContext,
    Workflow,
    get_plugin_manager,
    step,
)
from stepstream.agents import Agent
from stepstream.plugins.ray_executor import RayExecutor
from stepstream.testing import ModelServer, Recorder, TextReply
from tests.conftest import assert_no_tasks_left, leave_after_deltas

from . import remote_steps as rs

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_cluster"), pytest.mark.asyncio]


def manager(recorder: Recorder, executor: RayExecutor | None = None) -> PluginManager:
    return get_plugin_manager(
        load_entrypoints=False,
        plugins=[("recorder", recorder), ("ray", executor or RayExecutor())],
    )


async def stream_all(run: Any, **kw: Any) -> tuple[list[Event], Any]:
    stream = run.stream(**kw)
    events = [e async for e in stream]
    return events, await stream.get_workflow_state()


async def test_sequence_runs_on_workers_and_streams_like_a_local_run(recorder: Recorder) -> None:
    wf = Workflow(id="seq").then(rs.add_one).then(rs.double).then(rs.local_tail).commit()
    run = await wf.create_run(plugin_manager=manager(recorder))
    events, result = await stream_all(run, input_data={"n": 1})

    assert result.status == "success"
    assert result.result["n"] == 4
    pids = {sid: rec.output["pid"] for sid, rec in result.steps.items()}
    assert pids["add-one"] != os.getpid() and pids["double"] != os.getpid()
    assert pids["local-tail"] == os.getpid()  # unmarked: stays in the driver
    assert [(e.type, getattr(e, "step_id", None)) for e in events] == [
        ("start", None),
        *[(t, s) for s in ("add-one", "double", "local-tail") for t in _STEP_EVENTS],
        ("finish", None),
    ]
    assert [e.seq for e in events] == list(range(len(events)))
    assert recorder.events == events  # the same hook calls as a local run
    await assert_no_tasks_left()


_STEP_EVENTS = ("step-start", "step-result", "step-finish")


async def test_all_steps_sends_unmarked_steps_too(recorder: Recorder) -> None:
    wf = Workflow(id="all").then(rs.add_one).then(rs.local_tail).commit()
    run = await wf.create_run(plugin_manager=manager(recorder, RayExecutor(all_steps=True)))
    result = await run.start(input_data={"n": 1})
    assert result.status == "success"
    assert result.steps["local-tail"].output["pid"] != os.getpid()


async def test_remote_step_sees_its_run(recorder: Recorder) -> None:
    wf = Workflow(id="ctx", input_schema=rs.Count).then(rs.add_one).then(rs.report).commit()
    run = await wf.create_run(plugin_manager=manager(recorder))
    result = await run.start(input_data={"n": 5}, runtime_context=RuntimeContext({"user": "ada"}))
    assert result.status == "success", result.error
    seen = result.result
    assert seen["earlier"]["n"] == 6
    assert seen["init"] == {"n": 5}
    assert seen["user"] == "ada"
    assert (seen["run_id"], seen["step_id"]) == (run.run_id, "report")


async def test_parallel_fanout_relays_each_steps_events_in_order(recorder: Recorder) -> None:
    branches = [rs.writer(f"w{i}", 200) for i in range(4)]
    wf = Workflow(id="fan").parallel(branches).commit()
    run = await wf.create_run(plugin_manager=manager(recorder))
    events, result = await stream_all(run, input_data={})

    assert result.status == "success"
    for i in range(4):
        mine = [e.output["i"] for e in events if e.type == "step-output" and e.step_id == f"w{i}"]
        assert mine == list(range(200))
    assert {result.result[f"w{i}"]["pid"] for i in range(4)} - {os.getpid()}
    assert [e.seq for e in events] == list(range(len(events)))
    assert events[-1].type == "finish"


async def test_many_events_from_one_remote_step_arrive_in_order(recorder: Recorder) -> None:
    wf = Workflow(id="relay").then(rs.writer("bulk", 5000)).commit()
    run = await wf.create_run(plugin_manager=manager(recorder, RayExecutor(buffer=8)))
    events, result = await stream_all(run, input_data={}, buffer_size=4)
    outputs = [e.output["i"] for e in events if e.type == "step-output"]
    assert outputs == list(range(5000))
    assert result.status == "success"


async def test_failing_remote_step_fails_the_run_with_the_workers_traceback(
    recorder: Recorder,
) -> None:
    wf = Workflow(id="fail").then(rs.explode).commit()
    run = await wf.create_run(plugin_manager=manager(recorder))
    events, result = await stream_all(run, input_data={})

    assert result.status == "failed"
    record = result.steps["explode"]
    assert record.error == "ValueError: boom from the worker"
    assert "Traceback on the Ray worker" in (record.error_detail or "")
    assert "remote_steps.py" in (record.error_detail or "")
    assert [e.type for e in events] == [
        "start",
        "step-start",
        "step-output",  # sent before the raise: kept
        "step-result",
        "step-finish",
        "finish",
    ]
    errors = [c for c in recorder.calls if c[0] == "on_step_error"]
    assert isinstance(errors[0][1]["error"], ValueError)


async def test_an_error_that_cannot_come_back_is_described(recorder: Recorder) -> None:
    wf = Workflow(id="odd").then(rs.odd_error).commit()
    run = await wf.create_run(plugin_manager=manager(recorder))
    result = await run.start(input_data={})
    error = result.steps["odd-error"].error or ""
    assert error.startswith("StepSerializationError: step 'odd-error' ran on Ray, but its error")
    assert "NeedsKeywords: odd" in error


async def test_an_output_that_cannot_come_back_fails_the_step(recorder: Recorder) -> None:
    wf = Workflow(id="out").then(rs.lock_output).commit()
    run = await wf.create_run(plugin_manager=manager(recorder))
    result = await run.start(input_data={})
    error = result.steps["lock-output"].error or ""
    assert error.startswith("StepSerializationError: step 'lock-output' ran on Ray, but its output")


async def test_unpicklable_step_fails_at_dispatch_with_a_clear_error(recorder: Recorder) -> None:
    lock = threading.Lock()

    @step(id="holds-lock", executor="ray")
    async def holds_lock(ctx: StepContext[Any]) -> bool:
        return lock.locked()

    wf = Workflow(id="nopickle").then(holds_lock).commit()
    run = await wf.create_run(plugin_manager=manager(recorder))
    result = await run.start(input_data={})
    error = result.steps["holds-lock"].error or ""
    assert error.startswith(
        "StepSerializationError: step 'holds-lock' cannot run on Ray: "
        "its function (lock: a _thread.lock) does not pickle"
    )
    assert "module level" in error
    assert "Traceback" not in error


async def test_a_step_workers_cannot_import_fails_clearly(
    recorder: Recorder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "driver_only.py").write_text(  # its model is pickled by reference
        "from pydantic import BaseModel\n"
        "from stepstream import StepContext, step\n\n"
        "class Out(BaseModel):\n"
        "    ok: bool\n\n"
        "@step(id='driver-only', executor='ray')\n"
        "async def driver_only(ctx: StepContext[dict]) -> Out:\n"
        "    return Out(ok=True)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "driver_only", raising=False)
    from driver_only import driver_only  # type: ignore[import-not-found]

    shutil.rmtree(tmp_path)  # as on a machine the module was never copied to

    wf = Workflow(id="noimport").then(driver_only).commit()
    run = await wf.create_run(plugin_manager=manager(recorder))
    result = await run.start(input_data={})
    assert result.steps["driver-only"].error == (
        "StepSerializationError: step 'driver-only' cannot be loaded on the Ray worker: "
        "ModuleNotFoundError: No module named 'driver_only'. Make its module importable "
        "there (Ray's runtime_env: 'working_dir', 'py_modules' or PYTHONPATH)"
    )


async def test_unpicklable_runtime_context_names_the_key(recorder: Recorder) -> None:
    wf = Workflow(id="ctxlock").then(rs.add_one).commit()
    run = await wf.create_run(plugin_manager=manager(recorder))
    result = await run.start(
        input_data={"n": 1}, runtime_context=RuntimeContext({"db": threading.Lock(), "x": 1})
    )
    error = result.steps["add-one"].error or ""
    assert "cannot run on Ray: the runtime context (['db']: a _thread.lock) does not" in error


class Holder:
    def __init__(self, handle: Any) -> None:
        self.handle = handle


async def test_a_nested_unpicklable_value_is_named_by_its_path(recorder: Recorder) -> None:
    wf = Workflow(id="nested").then(rs.add_one).commit()
    run = await wf.create_run(plugin_manager=manager(recorder))
    context = RuntimeContext({"cfg": {"servers": [1, Holder(threading.Lock())]}})
    result = await run.start(input_data={"n": 1}, runtime_context=context)
    error = result.steps["add-one"].error or ""
    assert (
        "the runtime context (['cfg']['servers'][1].handle: a _thread.lock) does not pickle"
        in error
    ), error


@pytest.mark.parametrize(
    ("made", "error"),
    [
        (rs.self_cancel, "CancelledError (it was not canceled by its run)"),
        (rs.exits, "SystemExit: 3"),
    ],
)
async def test_a_step_raising_a_base_exception_fails_instead_of_hanging(
    recorder: Recorder, made: Any, error: str
) -> None:
    wf = Workflow(id="base").then(made).commit()
    run = await wf.create_run(plugin_manager=manager(recorder))
    result = await asyncio.wait_for(run.start(input_data={}), 60)
    assert result.status == "failed"
    assert result.steps[made.id].error == (
        f"StepExecutionError: step {made.id!r} raised {error} on the Ray worker"
    )


async def test_an_unpicklable_write_fails_that_call_and_keeps_earlier_events(
    recorder: Recorder,
) -> None:
    wf = Workflow(id="badwrite").then(rs.bad_write).commit()
    run = await wf.create_run(plugin_manager=manager(recorder))
    events, result = await stream_all(run, input_data={})
    assert [e.output for e in events if e.type == "step-output"] == [{"ok": 1}]
    assert result.steps["bad-write"].error == (
        "StepSerializationError: step 'bad-write' ran on Ray, but its ctx.write() data cannot "
        "be sent back (TypeError: cannot pickle '_thread.lock' object)"
    )


async def test_data_the_driver_cannot_load_fails_the_step_and_cancels_the_task(
    recorder: Recorder,
) -> None:
    signal = rs.Signal.remote()  # type: ignore[attr-defined]
    wf = Workflow(id="unloadable").then(rs.unloadable_write(signal)).commit()
    run = await wf.create_run(plugin_manager=manager(recorder))
    result = await run.start(input_data={})
    error = result.steps["unloadable"].error or ""
    assert error.startswith(
        "StepSerializationError: step 'unloadable' ran on Ray, but its ctx.write() data cannot "
        "be loaded here: TypeError:"
    ), error
    assert await asyncio.wait_for(signal.wait.remote(), 30) == "canceled"


async def test_an_unpicklable_earlier_result_fails_only_a_step_that_asks_for_it(
    recorder: Recorder,
) -> None:
    wf = (
        Workflow(id="results")
        .then(rs.open_client)
        .map(lambda ctx: {})  # the client goes no further
        .then(rs.remote_ignores)
        .then(rs.remote_asks)
        .commit()
    )
    run = await wf.create_run(plugin_manager=manager(recorder))
    result = await run.start(input_data={})
    assert result.steps["remote-ignores"].status == "success"
    assert result.steps["remote-asks"].error == (
        "StepSerializationError: step 'remote-asks' ran on Ray and asked for the result of "
        "'open-client', which could not be sent to the worker: ['client']: a _thread.lock "
        "does not pickle (TypeError: cannot pickle '_thread.lock' object)"
    )


async def test_cancel_cancels_the_ray_task(recorder: Recorder) -> None:
    signal = rs.Signal.remote()  # type: ignore[attr-defined]
    wf = Workflow(id="cancel").then(rs.hanging(signal)).commit()
    run = await wf.create_run(plugin_manager=manager(recorder))
    stream = run.stream(input_data={})
    async for event in stream:
        if event.type == "step-output":
            break  # leaving the stream cancels the run
    result = await stream.get_workflow_state()
    assert result.status == "canceled"
    assert await asyncio.wait_for(signal.wait.remote(), 30) == "canceled"
    assert recorder.types()[-3:] == ["step-result", "step-finish", "finish"]
    await assert_no_tasks_left()


async def test_timeout_cancels_the_ray_task(recorder: Recorder) -> None:
    signal = rs.Signal.remote()  # type: ignore[attr-defined]
    wf = Workflow(id="timeout").then(rs.hanging(signal, timeout=1.0)).commit()
    run = await wf.create_run(plugin_manager=manager(recorder))
    result = await run.start(input_data={})
    assert result.steps["hang"].error == (
        "StepTimeoutError: step 'hang' took longer than its timeout of 1s"
    )
    assert await asyncio.wait_for(signal.wait.remote(), 30) == "canceled"


async def test_retries_run_another_remote_attempt(recorder: Recorder, tmp_path: Path) -> None:
    wf = Workflow(id="retry").then(rs.flaky(str(tmp_path / "first"))).commit()
    run = await wf.create_run(plugin_manager=manager(recorder))
    result = await run.start(input_data={})
    assert result.status == "success"
    assert result.steps["flaky"].attempts == 2
    assert (tmp_path / "first").exists()


async def test_suspend_on_a_worker_and_resume(recorder: Recorder) -> None:
    wf = Workflow(id="suspend").then(rs.approve).commit()
    run = await wf.create_run(plugin_manager=manager(recorder))
    first = await run.start(input_data={})
    assert first.status == "suspended"
    asked = first.steps["approve"].suspend_payload
    assert asked["asked"] != os.getpid()
    done = await run.resume(step="approve", resume_data={"ok": True})
    assert done.status == "success"
    assert done.result == {"approved": True, "suspended_with": asked}


async def test_marked_step_without_the_plugin_fails_clearly(recorder: Recorder) -> None:
    pm = get_plugin_manager(load_entrypoints=False, plugins=[("recorder", recorder)])
    wf = Workflow(id="noplugin").then(rs.add_one).commit()
    run = await wf.create_run(plugin_manager=pm)
    result = await run.start(input_data={"n": 1})
    assert result.steps["add-one"].error == (
        "StepExecutionError: step 'add-one' asks for the 'ray' executor, but the run's "
        "plugins provide none; register stepstream.plugins.ray_executor.RayExecutor "
        "(the 'ray' plugin)"
    )


async def test_ray_plugin_by_name(recorder: Recorder) -> None:
    pm = get_plugin_manager(load_entrypoints=False, plugins=[("recorder", recorder), "ray"])
    wf = Workflow(id="byname").then(rs.add_one).commit()
    result = await (await wf.create_run(plugin_manager=pm)).start(input_data={"n": 1})
    assert result.steps["add-one"].output["pid"] != os.getpid()


# -- an agent step streaming from a worker -------------------------------------------------


@pytest.fixture
def model_server() -> Any:
    with ModelServer() as server:
        yield server


def remote_agent(server: ModelServer) -> Any:
    agent = Agent("Weather Agent", "Be brief.", "test-model", base_url=server.base_url)
    agent.api_key = "test-key"
    return step.from_agent(agent, executor="ray")


async def test_agent_step_streams_tokens_from_a_worker(
    recorder: Recorder, model_server: ModelServer
) -> None:
    pieces = [f"t{i} " for i in range(300)]
    model_server.responder = lambda body: TextReply(pieces)
    wf = Workflow(id="agent").then(remote_agent(model_server)).commit()
    run = await wf.create_run(plugin_manager=manager(recorder))
    events, result = await stream_all(run, input_data={"prompt": "Hi"})

    assert result.status == "success", result.error
    deltas = [e.args_text_delta for e in events if e.type == "tool-call-delta"]
    assert deltas == pieces
    assert result.result == {"text": "".join(pieces)}
    assert [e.type for e in events][:3] == ["start", "step-start", "tool-call-streaming-start"]
    assert [e.type for e in events][-3:] == ["step-result", "step-finish", "finish"]
    assert recorder.events == events
    assert len(model_server.requests) == 1


async def test_canceling_a_remote_agent_closes_its_http_stream(
    recorder: Recorder, model_server: ModelServer
) -> None:
    model_server.responder = lambda body: TextReply([f"t{i} " for i in range(2000)], delay=0.005)
    wf = Workflow(id="agent-cancel").then(remote_agent(model_server)).commit()
    run = await wf.create_run(plugin_manager=manager(recorder))
    stream = run.stream(input_data={"prompt": "Hi"}, buffer_size=2)
    await leave_after_deltas(stream, 3)
    result = await stream.get_workflow_state()
    assert result.status == "canceled"
    assert await asyncio.to_thread(model_server.stream_ended.wait, 30)
    assert model_server.stream_endings == ["client-gone"]
    await assert_no_tasks_left()
