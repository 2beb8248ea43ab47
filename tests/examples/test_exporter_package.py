"""The example third-party package (examples/exporter-package): installed, it plugs itself in.

It is not faked here: the test command installs it, and these tests go through its real
entry point and post to a real HTTP receiver on 127.0.0.1.
"""

from __future__ import annotations

import importlib.metadata
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from stepstream import PluginManager, StepContext, Workflow, get_plugin_manager, step
from stepstream.plugin_manager import AUTOLOAD_ENV

URL_ENV = "STEPSTREAM_WEBHOOK_URL"
TOKEN_ENV = "STEPSTREAM_WEBHOOK_TOKEN"
WRITES = 250  # with the default batch size of 100, the events need at least three POSTs


def _webhook_module() -> Any:
    """The installed package, or a failure saying how to install it (never a skip)."""
    found = [
        ep for ep in importlib.metadata.entry_points(group="stepstream") if ep.name == "webhook"
    ]
    if not found:
        pytest.fail(
            "stepstream-webhook is not installed: run the README's test command, which installs "
            "examples/exporter-package (.venv/bin/pip install -e examples/exporter-package)"
        )
    import stepstream_webhook

    return stepstream_webhook


def _loaded(pm: PluginManager) -> Any:
    """The plugin ``pm`` registered as ``webhook``: the package's module-level instance."""
    plugin = pm.get_plugin("webhook")
    assert plugin is _webhook_module().plugin
    return plugin


class Receiver:
    """An HTTP server on 127.0.0.1 that records each POST (headers, JSON body)."""

    def __init__(self) -> None:
        self.status = 200
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._posted = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                # Recorded before answering, so an exporter's flush() implies it is here.
                with receiver._posted:
                    receiver.bodies.append(body)
                    receiver.headers.append(dict(self.headers))
                    receiver._posted.notify_all()
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"
        # A short poll interval only makes shutdown() prompt; nothing waits on it.
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def wait_for(self, posts: int) -> bool:
        """Wait until ``posts`` POSTs have been recorded; False after 10 seconds."""
        with self._posted:
            return self._posted.wait_for(lambda: len(self.bodies) >= posts, timeout=10)

    def entries(self, since: int = 0) -> list[dict[str, Any]]:
        """Every posted event entry, in the order received, from POST number ``since`` on."""
        return [entry for body in self.bodies[since:] for entry in body["events"]]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    """A running receiver, with the webhook's environment pointing at it and autoload on."""
    server = Receiver()
    monkeypatch.setenv(URL_ENV, server.url)
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    monkeypatch.delenv(AUTOLOAD_ENV, raising=False)
    yield server
    # Nothing may still be on its way to a closed server when the next test runs.
    assert _webhook_module().plugin.flush()
    server.close()


def _exporter_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("stepstream-exporter-")}


@step(id="chatty")
async def chatty(ctx: StepContext[Any]) -> Any:
    for i in range(WRITES):
        await ctx.write({"i": i})
    return {"wrote": WRITES}


@step(id="one")
async def one(ctx: StepContext[Any]) -> Any:
    return ctx.input_data


def test_the_package_is_installed_with_its_entry_point() -> None:
    module = _webhook_module()
    (ep,) = [
        ep for ep in importlib.metadata.entry_points(group="stepstream") if ep.name == "webhook"
    ]
    assert ep.value == "stepstream_webhook:plugin"
    assert ep.dist is not None and ep.dist.name == "stepstream-webhook"
    assert ep.load() is module.plugin


@pytest.mark.asyncio
async def test_a_plain_run_posts_every_event_in_order(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, "s3cret")
    pm = get_plugin_manager()
    assert pm.source_of("webhook") == "entrypoint:stepstream-webhook"
    plugin = _loaded(pm)
    run = await Workflow(id="wf").then(chatty).commit().create_run(plugin_manager=pm)
    streamed = [event async for event in run.stream(input_data={})]
    assert await plugin.aflush()

    assert run.result is not None and run.result.status == "success"
    assert len(streamed) > WRITES
    assert receiver.wait_for(3)
    posted = receiver.entries()
    assert [entry["event"] for entry in posted] == [event.to_wire() for event in streamed]
    assert [entry["seq"] for entry in posted] == list(range(len(streamed)))
    assert {entry["runId"] for entry in posted} == {run.run_id}
    assert len(receiver.bodies) >= 3
    assert all(len(body["events"]) <= 100 for body in receiver.bodies)
    assert {h["Authorization"] for h in receiver.headers} == {"Bearer s3cret"}


@pytest.mark.asyncio
async def test_without_a_url_the_plugin_is_inert(monkeypatch: pytest.MonkeyPatch) -> None:
    module = _webhook_module()
    monkeypatch.delenv(URL_ENV, raising=False)
    monkeypatch.delenv(AUTOLOAD_ENV, raising=False)
    fresh = module.WebhookExporter.from_env()
    pm = get_plugin_manager(plugins=[("fresh-webhook", fresh)])
    assert pm.has_plugin("webhook")
    exported = module.plugin.exported
    workers = _exporter_threads()

    run = await Workflow(id="wf").then(chatty).commit().create_run(plugin_manager=pm)
    done = await run.start({})

    assert done.status == "success" and done.plugin_errors == []
    assert module.plugin.url is None and fresh.url is None
    assert module.plugin.exported == exported and fresh.exported == 0
    assert _exporter_threads() <= workers  # not even a worker thread was started


@pytest.mark.asyncio
@pytest.mark.parametrize("how", ["environment", "argument", "block"])
async def test_the_plugin_can_be_kept_out(
    how: str, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = _webhook_module()
    if how == "environment":
        monkeypatch.setenv(AUTOLOAD_ENV, "1")
        pm = get_plugin_manager()
    elif how == "argument":
        pm = get_plugin_manager(load_entrypoints=False)
    else:
        pm = get_plugin_manager(block=["webhook"])
        assert pm.is_blocked("webhook")
    assert not pm.has_plugin("webhook") and pm.has_plugin("stream")
    exported = module.plugin.exported

    run = await Workflow(id="wf").then(one).commit().create_run(plugin_manager=pm)
    streamed = [event.type async for event in run.stream(input_data={})]

    assert streamed[0] == "start" and streamed[-1] == "finish"
    assert module.plugin.flush()
    assert module.plugin.exported == exported
    assert receiver.bodies == []


@pytest.mark.asyncio
async def test_a_failing_receiver_is_reported_and_the_runs_go_on(receiver: Receiver) -> None:
    pm = get_plugin_manager()
    plugin = _loaded(pm)
    wf = Workflow(id="wf").then(one).commit()
    failures = plugin.failures

    receiver.status = 500
    first = await (await wf.create_run(plugin_manager=pm)).start({"n": 1})
    assert await plugin.aflush()
    assert first.status == "success"
    assert plugin.failures > failures and receiver.bodies
    # The run's last batch failed after its last event: the next run's first event reports it.
    receiver.status = 200
    tried = len(receiver.bodies)
    run = await wf.create_run(plugin_manager=pm)
    streamed = [event async for event in run.stream(input_data={"n": 2})]
    assert await plugin.aflush()

    assert run.result is not None and run.result.status == "success"
    assert [(e.plugin, e.hook) for e in run.result.plugin_errors] == [("webhook", "on_event")]
    assert "500 Internal Server Error" in run.result.plugin_errors[0].error
    reported = [event for event in streamed if event.type == "plugin-error"]
    assert [(event.plugin, event.hook) for event in reported] == [("webhook", "on_event")]
    # Failed batches are dropped, not retried; the second run's events all got through.
    assert [entry["event"] for entry in receiver.entries(tried)] == [
        event.to_wire() for event in streamed
    ]
