"""The ``otel`` plugin's GenAI spans (``invoke_agent``, ``chat``, ``execute_tool``), content
capture, the semconv opt-in, one trace across resumes and processes, a caller's trace, the
OpenAI instrumentation's spans, and a real OTLP/HTTP export to a receiver on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from stepstream import PluginManager, StepContext, Usage, Workflow, get_plugin_manager, step
from stepstream.plugins.otel import OpenTelemetryExporter, traceparent_context
from stepstream.storage.sqlite import SQLiteStorage
from stepstream.testing import ModelServer, ReplySequence, TextReply, ToolCallReply

from ..agents.test_agent import make_agent
from ..agents.test_tools import get_weather
from ..agents.test_usage import PRICES, TEXT_USAGE, TOOL_USAGE
from ..core.durable_child import crash_workflow


@pytest.fixture
def spans(span_exporter: InMemorySpanExporter) -> InMemorySpanExporter:
    """The finished spans of the test's provider (``provider``, from conftest)."""
    return span_exporter


def manager(provider: TracerProvider, **kw: Any) -> PluginManager:
    plugin = OpenTelemetryExporter(provider, **kw)
    return get_plugin_manager(load_entrypoints=False, strict=True, plugins=[("otel", plugin)])


def tool_loop(server: ModelServer) -> None:
    server.responder = ReplySequence(
        [
            ToolCallReply("get_weather", ['{"city":', '"Oslo"}'], usage=TOOL_USAGE),
            TextReply(["Sun", "ny"], usage=cast(dict[str, int], TEXT_USAGE)),
        ]
    )


def agent_workflow(server: ModelServer, **kw: Any) -> Workflow:
    agent = make_agent(server, tools=[get_weather])
    return Workflow(id="plan", prices=PRICES, **kw).then(step.from_agent(agent)).commit()


def named(exporter: InMemorySpanExporter) -> dict[str, list[ReadableSpan]]:
    out: dict[str, list[ReadableSpan]] = {}
    for span in exporter.get_finished_spans():
        out.setdefault(span.name, []).append(span)
    return out


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def parent(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def sid(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


@pytest.mark.asyncio
async def test_agent_model_calls_and_tools_follow_the_gen_ai_conventions(
    model_server: ModelServer, provider: TracerProvider, spans: InMemorySpanExporter
) -> None:
    tool_loop(model_server)
    pm = manager(provider)
    result = await (await agent_workflow(model_server).create_run(plugin_manager=pm)).start(
        {"prompt": "Oslo?"}
    )
    assert result.status == "success"
    by_name = named(spans)
    assert set(by_name) == {
        "invoke_workflow plan",
        "invoke_agent Weather Agent",
        "chat mock-gpt",
        "execute_tool get_weather",
    }
    [run], [agent], chats, [tool_span] = (
        by_name["invoke_workflow plan"],
        by_name["invoke_agent Weather Agent"],
        by_name["chat mock-gpt"],
        by_name["execute_tool get_weather"],
    )
    assert parent(agent) == sid(run)
    assert all(parent(s) == sid(agent) for s in (*chats, tool_span))
    total = Usage.from_json(result.usage)
    assert attrs(agent) | {"stepstream.run_id": "-"} == {
        "stepstream.run_id": "-",
        "stepstream.step_id": "Weather Agent",
        "stepstream.status": "success",
        "stepstream.text_chunks": 2,
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "Weather Agent",
        "gen_ai.agent.id": "weatherAgent",
        "gen_ai.request.model": "mock-gpt",
        "gen_ai.provider.name": "openai",
        "gen_ai.system": "openai",
        "gen_ai.usage.input_tokens": 50,
        "gen_ai.usage.output_tokens": 7,
        "stepstream.cost": pytest.approx(total.cost),
    }
    assert attrs(run)["gen_ai.usage.input_tokens"] == 50
    chats.sort(key=lambda s: s.start_time or 0)
    first, second = (attrs(s) for s in chats)
    assert first["gen_ai.operation.name"] == "chat"
    assert (first["gen_ai.request.model"], first["gen_ai.response.model"]) == (
        "mock-gpt",
        "mock-gpt",
    )
    assert first["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert second["gen_ai.response.finish_reasons"] == ("stop",)
    assert (first["gen_ai.usage.input_tokens"], first["gen_ai.usage.output_tokens"]) == (20, 5)
    assert second["gen_ai.usage.cache_read.input_tokens"] == 10
    assert second["gen_ai.usage.reasoning.output_tokens"] == 1
    assert "gen_ai.input.messages" not in attrs(agent)  # content is off by default
    # Times: each chat span lies inside the agent's, the tool runs between the two calls.
    assert agent.start_time is not None and agent.end_time is not None
    for chat in chats:
        assert chat.start_time is not None and chat.end_time is not None
        assert chat.start_time <= chat.end_time
        assert agent.start_time - 1_000_000 <= chat.start_time  # ms resolution
        assert chat.end_time <= agent.end_time + 1_000_000
    assert tool_span.start_time is not None and chats[1].start_time is not None
    assert tool_span.start_time <= chats[1].start_time + 1_000_000
    assert attrs(tool_span) == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "get_weather",
        "gen_ai.tool.call.id": "call_1",
        "gen_ai.tool.type": "function",
    }
    assert tool_span.status.status_code is StatusCode.UNSET


@pytest.mark.asyncio
async def test_content_is_recorded_only_when_asked(
    model_server: ModelServer,
    provider: TracerProvider,
    spans: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http,gen_ai_latest_experimental")
    tool_loop(model_server)
    pm = manager(provider)
    await (await agent_workflow(model_server).create_run(plugin_manager=pm)).start(
        {"prompt": "Oslo?"}
    )
    by_name = named(spans)
    agent = attrs(by_name["invoke_agent Weather Agent"][0])
    assert json.loads(agent["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Oslo?"}]}
    ]
    assert json.loads(agent["gen_ai.output.messages"]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Sunny"}]}
    ]
    tool_attrs = attrs(by_name["execute_tool get_weather"][0])
    assert json.loads(tool_attrs["gen_ai.tool.call.arguments"]) == {"city": "Oslo"}
    assert json.loads(tool_attrs["gen_ai.tool.call.result"])["city"] == "Oslo"
    # The latest conventions only: no gen_ai.system beside gen_ai.provider.name.
    assert "gen_ai.system" not in agent and agent["gen_ai.provider.name"] == "openai"
    assert all("gen_ai.system" not in attrs(s) for s in by_name["chat mock-gpt"])


@pytest.mark.asyncio
async def test_a_failing_tool_is_an_error_span(
    model_server: ModelServer, provider: TracerProvider, spans: InMemorySpanExporter
) -> None:
    model_server.responder = ReplySequence([ToolCallReply("nope", ["{}"]), TextReply(["sorry"])])
    pm = manager(provider)
    await (await agent_workflow(model_server).create_run(plugin_manager=pm)).start({"prompt": "hi"})
    [tool_span] = named(spans)["execute_tool nope"]
    assert tool_span.status.status_code is StatusCode.ERROR
    assert tool_span.status.description == "unknown tool 'nope'"


@step(id="gate")
async def gate(ctx: StepContext[Any]) -> Any:
    if ctx.resume_data is None:
        ctx.suspend({"waiting": True})
    return {"prompt": "go"}


@pytest.mark.asyncio
async def test_a_stored_run_resumed_in_another_process_continues_its_trace(
    model_server: ModelServer,
    provider: TracerProvider,
    spans: InMemorySpanExporter,
    tmp_path: Path,
) -> None:
    model_server.responder = lambda body: TextReply(["ok"])

    def workflow() -> Workflow:
        agent = make_agent(model_server)
        storage = SQLiteStorage(tmp_path / "runs.db")
        return Workflow(id="wf", storage=storage).then(gate).then(step.from_agent(agent)).commit()

    first_wf = workflow()
    run = await first_wf.create_run(plugin_manager=manager(provider))
    assert (await run.start({})).status == "suspended"
    await first_wf.storage.close()  # type: ignore[union-attr]
    [first] = named(spans)["invoke_workflow wf"]
    spans.clear()
    # A new workflow object, a new plugin manager and plugin: only the storage is shared.
    second_wf = workflow()
    loaded = await second_wf.load_run(run.run_id, plugin_manager=manager(provider))
    assert (await loaded.resume(step="gate", resume_data={"ok": True})).status == "success"
    await second_wf.storage.close()  # type: ignore[union-attr]
    by_name = named(spans)
    [resumed] = by_name["invoke_workflow wf"]
    assert resumed.context is not None and first.context is not None
    assert resumed.context.trace_id == first.context.trace_id
    assert parent(resumed) == sid(first)
    [agent] = by_name["invoke_agent Weather Agent"]
    assert agent.context is not None and agent.context.trace_id == first.context.trace_id


@pytest.mark.asyncio
async def test_runs_start_inside_the_callers_span_or_a_traceparent(
    provider: TracerProvider, spans: InMemorySpanExporter
) -> None:
    wf = Workflow(id="wf").then(gate).commit()
    with provider.get_tracer("caller").start_as_current_span("handle request") as caller:
        await (await wf.create_run(plugin_manager=manager(provider))).start({})
    [run_span] = named(spans)["invoke_workflow wf"]
    assert parent(run_span) == caller.get_span_context().span_id
    spans.clear()
    trace_id, span_id = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    with traceparent_context(f"00-{trace_id}-{span_id}-01"):
        await (await wf.create_run(plugin_manager=manager(provider))).start({})
    [run_span] = named(spans)["invoke_workflow wf"]
    assert run_span.context is not None
    assert f"{run_span.context.trace_id:032x}" == trace_id
    assert parent(run_span) == int(span_id, 16)
    with traceparent_context("not a traceparent"):  # ignored, as the W3C spec asks
        await (await wf.create_run(plugin_manager=manager(provider))).start({})


@pytest.mark.asyncio
async def test_spans_of_an_openai_instrumentation_nest_under_the_agent_step(
    model_server: ModelServer,
    provider: TracerProvider,
    spans: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``opentelemetry-instrumentation-openai-v2`` wraps ``AsyncCompletions.create`` in a span
    started from the current context; its release on the index does not import against the
    only ``opentelemetry-util-genai`` there, so the same wrapping is done here by hand."""
    from openai.resources.chat.completions import AsyncCompletions

    original = AsyncCompletions.create
    tracer = provider.get_tracer("opentelemetry.instrumentation.openai_v2")

    async def create(self: Any, *args: Any, **kwargs: Any) -> Any:
        with tracer.start_as_current_span(f"chat {kwargs['model']} (instrumented)"):
            return await original(self, *args, **kwargs)

    monkeypatch.setattr(AsyncCompletions, "create", create)
    model_server.responder = lambda body: TextReply(["ok"])
    wf = Workflow(id="wf").then(step.from_agent(make_agent(model_server))).commit()
    await (await wf.create_run(plugin_manager=manager(provider))).start({"prompt": "hi"})
    by_name = named(spans)
    [agent] = by_name["invoke_agent Weather Agent"]
    [theirs] = by_name["chat mock-gpt (instrumented)"]
    assert parent(theirs) == sid(agent)


class _Receiver(BaseHTTPRequestHandler):
    """An OTLP/HTTP trace receiver: keeps each decoded export request."""

    received: list[ExportTraceServiceRequest]
    paths: list[str]

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        type(self).paths.append(f"{self.path} {self.headers.get('Content-Type')}")
        type(self).received.append(request)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.mark.asyncio
async def test_spans_export_over_otlp_http_to_a_local_receiver(model_server: ModelServer) -> None:
    handler = type("Receiver", (_Receiver,), {"received": [], "paths": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    provider = TracerProvider()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=url)))
    try:
        tool_loop(model_server)
        pm = manager(provider)
        await (await agent_workflow(model_server).create_run(plugin_manager=pm)).start(
            {"prompt": "Oslo?"}
        )
        provider.force_flush()
    finally:
        provider.shutdown()
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert set(handler.paths) == {"/v1/traces application/x-protobuf"}
    exported = {}
    for request in handler.received:
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                assert scope_spans.scope.name == "stepstream"
                for span in scope_spans.spans:
                    exported.setdefault(span.name, []).append(span)
    assert sorted((name, len(found)) for name, found in exported.items()) == [
        ("chat mock-gpt", 2),
        ("execute_tool get_weather", 1),
        ("invoke_agent Weather Agent", 1),
        ("invoke_workflow plan", 1),
    ]

    def values(span: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for kv in span.attributes:
            kind = kv.value.WhichOneof("value")
            value = getattr(kv.value, kind)
            out[kv.key] = (
                list(v.string_value for v in value.values) if kind == "array_value" else value
            )
        return out

    [agent] = exported["invoke_agent Weather Agent"]
    assert values(agent)["gen_ai.usage.input_tokens"] == 50
    assert values(agent)["gen_ai.usage.output_tokens"] == 7
    [run] = exported["invoke_workflow plan"]
    assert agent.parent_span_id == run.span_id and agent.trace_id == run.trace_id
    chats = sorted(exported["chat mock-gpt"], key=lambda s: s.start_time_unix_nano)
    assert [values(c)["gen_ai.response.finish_reasons"] for c in chats] == [
        ["tool_calls"],
        ["stop"],
    ]
    assert all(c.parent_span_id == agent.span_id for c in chats)


ROOT = Path(__file__).resolve().parents[2]


def killed_at_s3(db: str, marks: Path, run_id: str) -> None:
    """Run the crash workflow in a child process with the otel plugin; kill it in s3."""
    args = [sys.executable, "-m", "tests.plugins.otel_child", db, str(marks), run_id]
    pipe = subprocess.PIPE
    proc = subprocess.Popen(args, cwd=ROOT, stdout=pipe, stderr=pipe, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until s3 runs (or the child dies: "")
        assert line.strip() == "s3-running", proc.stderr.read() if proc.stderr else ""
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)


@pytest.mark.asyncio
async def test_a_run_recovered_after_its_process_died_continues_its_trace(
    tmp_path: Path, provider: TracerProvider, spans: InMemorySpanExporter
) -> None:
    db, marks, run_id = str(tmp_path / "runs.db"), tmp_path / "marks", str(uuid.uuid4())
    marks.mkdir()
    killed_at_s3(db, marks, run_id)
    store = SQLiteStorage(db)
    snapshot = await store.load_run(run_id)
    assert snapshot is not None
    traceparent = snapshot.state["meta"]["otel"]["traceparent"]
    _, trace_id, span_id, _ = traceparent.split("-")

    (marks / "recovering").touch()
    run = await crash_workflow(marks).load_run(
        run_id, storage=store, plugin_manager=manager(provider)
    )
    assert run.status == "interrupted"
    assert (await run.resume()).status == "success"
    await store.close()
    [recovered] = named(spans)["invoke_workflow crash-wf"]
    assert recovered.context is not None
    assert f"{recovered.context.trace_id:032x}" == trace_id
    assert parent(recovered) == int(span_id, 16)  # the dead process's run span
    assert {f"{s.context.trace_id:032x}" for s in spans.get_finished_spans() if s.context} == {
        trace_id
    }


def test_a_run_started_over_http_with_a_traceparent_joins_the_callers_trace(
    provider: TracerProvider, spans: InMemorySpanExporter
) -> None:
    import httpx

    from stepstream.server import create_app, serve_in_thread

    app = create_app(
        {"gated": Workflow(id="wf").then(gate).commit()}, plugin_manager=manager(provider)
    )
    trace_id, span_id = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    with serve_in_thread(app) as url:
        answer = httpx.post(
            f"{url}/api/workflows/gated/start-async",
            json={"inputData": {}},
            headers={"traceparent": f"00-{trace_id}-{span_id}-01"},
        )
        assert answer.status_code == 200, answer.text
    [run_span] = named(spans)["invoke_workflow wf"]
    assert run_span.context is not None
    assert f"{run_span.context.trace_id:032x}" == trace_id
    assert parent(run_span) == int(span_id, 16)
