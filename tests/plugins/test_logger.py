"""The built-in ``logger`` plugin."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from stepstream import StepContext, Workflow, get_plugin_manager, step
from stepstream.events import ToolCallDeltaEvent
from stepstream.plugins.logger import LoggerPlugin, redact


@step(id="login")
async def login(ctx: StepContext[Any]) -> Any:
    await ctx.emit(
        ToolCallDeltaEvent,
        tool_call_id="a",
        tool_name="A",
        name="A",
        args={},
        args_text_delta="tok",
    )
    return {"user": "ada", "api_key": "sk-live-1234567890", "note": "Bearer abc.def.ghi"}


@step(id="boom")
async def boom(ctx: StepContext[Any]) -> Any:
    raise RuntimeError("password=hunter2 leaked? Bearer xyz123")


@pytest.mark.asyncio
async def test_one_line_per_event_with_structured_extras(caplog: pytest.LogCaptureFixture) -> None:
    pm = get_plugin_manager(load_entrypoints=False)
    assert pm.source_of("logger") == "default"
    caplog.set_level(logging.INFO, logger="stepstream.events")
    run = await Workflow(id="wf").then(login).commit().create_run(plugin_manager=pm)
    await run.start({"token": "t0ps3cret"})
    records = [r for r in caplog.records if r.name == "stepstream.events"]
    # start, step-start, step-result, step-finish, finish at INFO; the delta is DEBUG.
    assert [r.event_type for r in records] == [  # type: ignore[attr-defined]
        "start",
        "step-start",
        "step-result",
        "step-finish",
        "finish",
    ]
    assert all(r.run_id == run.run_id for r in records)  # type: ignore[attr-defined]
    assert [r.seq for r in records] == [0, 1, 3, 4, 5]  # type: ignore[attr-defined]
    assert records[1].step_id == "login"  # type: ignore[attr-defined]
    assert records[1].getMessage() == (
        f'run {run.run_id[:8]} #1 step-start login input={{"token": "[redacted]"}}'
    )
    text = caplog.text
    for secret in ("t0ps3cret", "sk-live-1234567890", "abc.def.ghi"):
        assert secret not in text


@pytest.mark.asyncio
async def test_deltas_at_debug_and_failures_at_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="stepstream.events")
    pm = get_plugin_manager(load_entrypoints=False)
    await (await Workflow(id="a").then(login).commit().create_run(plugin_manager=pm)).start({})
    await (await Workflow(id="b").then(boom).commit().create_run(plugin_manager=pm)).start({})
    by_type = {(r.event_type, r.levelname) for r in caplog.records}  # type: ignore[attr-defined]
    assert ("tool-call-delta", "DEBUG") in by_type
    assert ("step-result", "WARNING") in by_type
    assert "xyz123" not in caplog.text and "RuntimeError: password=hunter2" not in caplog.text


def test_nothing_is_formatted_when_disabled() -> None:
    plugin = LoggerPlugin("stepstream.test.silent")
    plugin.log.setLevel(logging.ERROR)

    class Exploding:
        type = "step-start"

        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"read {name} although the level is off")

    plugin.on_event(Exploding())  # type: ignore[arg-type]


def test_redact() -> None:
    assert redact({"Authorization": "x", "nested": [{"OPENAI_API_KEY": "y"}], "n": 1}) == {
        "Authorization": "[redacted]",
        "nested": [{"OPENAI_API_KEY": "[redacted]"}],
        "n": 1,
    }
    assert redact("key sk-abcdefgh123 and Bearer tok.en") == "key [redacted] and [redacted]"
