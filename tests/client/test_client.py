"""``stepstream.client`` against the real server: the same events as ``Run.stream()``, every
Mastra ``Workflow`` method, SSE that reconnects without gap or duplicate, sync and async alike."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest

from stepstream import Event, RuntimeContext, get_plugin_manager
from stepstream.client import AsyncClient, AsyncWorkflow, Client, Workflow
from stepstream.errors import ClientError
from stepstream.events import StepStartEvent
from stepstream.result import WorkflowResult

from ..conformance import workflows as cases
from ..server.test_mastra_client import wire
from .conftest import Proxy


async def in_process(
    wf: Any, input_data: Any, context: dict[str, Any] | None = None
) -> list[Event]:
    run = await wf.create_run(plugin_manager=get_plugin_manager(load_entrypoints=False))
    return [e async for e in run.stream(input_data, RuntimeContext(context or {}))]


def comparable(events: list[Event]) -> list[str]:
    # Run ids differ between the two runs; everything else must be equal, in order.
    return wire(
        [{**e.to_wire(), "payload": _no_run_id(e.to_wire().get("payload"))} for e in events]
    )


def _no_run_id(payload: Any) -> Any:
    if isinstance(payload, dict):
        return {k: v for k, v in payload.items() if k != "runId"}
    return payload


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("key", "case", "input_data", "context"),
    [
        ("seqWf", cases.a_sequence, {"value": 21}, None),
        ("failWf", cases.e_step_throws, {"value": 1}, None),
        ("localeWf", cases.j_runtime_context, {"name": "Ada"}, {"locale": "fr"}),
    ],
)
@pytest.mark.asyncio
async def test_async_stream_equals_run_stream(
    server_url: str, key: str, case: Any, input_data: Any, context: dict[str, Any] | None
) -> None:
    expected = await in_process(case(), input_data, context)
    async with AsyncClient(server_url) as client:
        ctx = RuntimeContext(context) if context else None
        got = [e async for e in client.workflow(key).stream(input_data, runtime_context=ctx)]
    assert comparable(got) == comparable(expected)
    assert [e.seq for e in got] == [e.seq for e in expected]
    assert isinstance(got[1], StepStartEvent)  # typed, the classes of Run.stream()


def test_sync_stream_equals_run_stream_and_start_async_is_typed(server_url: str) -> None:
    expected = asyncio.run(in_process(cases.a_sequence(), {"value": 21}))
    with Client(server_url) as client:
        seq = client.workflow("seqWf")
        assert comparable(list(seq.stream({"value": 21}))) == comparable(expected)
        result = seq.start_async({"value": 2})
        assert isinstance(result, WorkflowResult)
        assert (result.status, result.result) == ("success", {"text": "doubled=4"})
        assert result.steps["double"].output == {"doubled": 4}


@pytest.mark.asyncio
async def test_every_workflow_method_against_the_server(server_url: str) -> None:
    async with AsyncClient(server_url) as client:
        assert set(await client.workflows()) >= {"seqWf", "approvalWf"}
        assert (await client.health())["status"] == "ok"
        approval = client.workflow("approvalWf")
        assert (await approval.details())["name"] == "approval-wf" or "steps" in (
            await approval.details()
        )
        run_id = await approval.create_run("client-run-1")
        assert run_id == "client-run-1"
        watching = asyncio.ensure_future(_collect(approval.watch(run_id)))
        await approval.start(run_id, {"item": "lamp"})
        records = await watching
        assert records[-1]["payload"]["workflowState"]["status"] in ("suspended", "running")
        suspended = await approval.start_async({"item": "desk"})
        assert suspended.status == "suspended" and suspended.suspended == [["approve"]]
        done = await approval.resume_async(
            suspended.run_id, "approve", {"approved": True, "approver": "bo"}
        )
        assert done.status == "success"
        stored = await approval.run_by_id(suspended.run_id)
        assert stored["snapshot"]["status"] == "success"
        assert (await approval.execution_result(suspended.run_id))["status"] == "success"
        listed = await approval.runs(limit=1)
        assert len(listed["runs"]) == 1 and listed["total"] >= 2
        other = (await approval.start_async({"item": "chair"})).run_id
        await approval.send_event(other, "nobody-waits", 1)
        await approval.resume(other, "approve", {"approved": False, "approver": "al"})
        third = (await approval.start_async({"item": "bed"})).run_id
        await approval.cancel(third)
        assert (await approval.execution_result(third))["status"] == "canceled"
        with pytest.raises(ClientError) as missing:
            await client.workflow("nope").create_run()
        assert missing.value.status == 404 and "Workflow not found" in str(missing.value)


async def _collect(records: Any) -> list[Any]:
    return [r async for r in records]


@pytest.mark.asyncio
async def test_events_reconnect_after_a_cut_with_no_gap_and_no_duplicate(
    server_url: str, proxy: Proxy
) -> None:
    async with AsyncClient(server_url) as direct, AsyncClient(proxy.url) as far:
        approval = direct.workflow("approvalWf")
        run_id = (await approval.start_async({"item": "lamp"})).run_id
        seen: list[Event] = []
        async for event in far.workflow("approvalWf").events(run_id):
            seen.append(event)
            if event.type == "step-suspended":
                proxy.cut()  # the network fails while the run is suspended...
                resumed = asyncio.ensure_future(
                    approval.resume_async(run_id, "approve", {"approved": True, "approver": "x"})
                )
        assert (await resumed).status == "success"  # ...and the run goes on meanwhile
    assert [e.seq for e in seen] == list(range(len(seen)))
    assert seen[-1].type == "finish"
    assert [e.type for e in seen].count("step-suspended") == 1


def test_sync_events_follow_to_the_end(server_url: str) -> None:
    with Client(server_url) as client:
        seq = client.workflow("seqWf")
        run_id = seq.start_async({"value": 1}).run_id
        events = list(seq.events(run_id))
        later = list(seq.events(run_id, after=events[2].seq))
    assert [e.type for e in events][-1] == "finish"
    assert [e.seq for e in later] == [e.seq for e in events[3:]]


def test_a_server_that_is_not_there_is_a_client_error() -> None:
    with Client("http://127.0.0.1:9") as client, pytest.raises(ClientError) as lost:
        client.workflows()
    assert lost.value.status is None


@pytest.mark.parametrize(("sync", "twin"), [(Workflow, AsyncWorkflow), (Client, AsyncClient)])
def test_sync_twins_keep_the_async_signatures(sync: type, twin: type) -> None:
    names = {n for n, f in vars(twin).items() if inspect.isfunction(f) and not n.startswith("_")}
    names -= {"call", "records", "aclose"}  # the async client's own plumbing
    for name in names:
        a, s = inspect.signature(getattr(twin, name)), inspect.signature(getattr(sync, name))
        assert list(a.parameters) == list(s.parameters), name
        for param in a.parameters.values():
            other = s.parameters[param.name]
            assert (param.kind, param.default) == (other.kind, other.default), (name, param)
