"""The built-in ``logger`` plugin."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from stepstream import Event, StepContext, Workflow, get_plugin_manager, hookimpl, step
from stepstream.agents.redaction import REDACTED, redact
from stepstream.events import ToolCallDeltaEvent
from stepstream.plugins.logger import LoggerPlugin


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
        f'run {run.run_id[:8]} #1 step-start login input={{"token": "[REDACTED]"}}'
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


@pytest.mark.parametrize(
    "key", ["max_tokens", "prompt_tokens", "tokenizer", "secretary", "maxTokens", "token_count"]
)
def test_keys_that_merely_contain_a_secret_word_are_shown(key: str) -> None:
    assert redact({key: 42}) == {key: 42}
    assert redact(f"{key}=42") == f"{key}=42"


@pytest.mark.parametrize(
    "key",
    [
        *("api_key", "OPENAI_API_KEY", "apiKey", "authorization", "Authorization", "password"),
        *("token", "access_token", "accessToken", "client-secret", "x-api-key"),
    ],
)
def test_keys_named_as_secrets_are_hidden(key: str) -> None:
    assert redact({key: "v4lue", "n": 1}) == {key: REDACTED, "n": 1}
    assert redact(f"{key}=v4lue, n=1") == f"{key}={REDACTED}, n=1"
    assert redact(f'{{"{key}": "v4lue"}}') == f'{{"{key}": "{REDACTED}"}}'


def test_tokens_are_hidden_by_their_shape() -> None:
    text = "key sk-abcdefgh123 and Bearer tok.en, header Authorization: Basic Zm9vOmJhcg=="
    out = redact(text)
    assert out == f"key {REDACTED} and Bearer {REDACTED}, header Authorization: {REDACTED}"
    assert redact("the token expired, ask the secretary") == (
        "the token expired, ask the secretary"
    )


def test_nested_values_are_redacted() -> None:
    assert redact({"Authorization": "x", "nested": [{"OPENAI_API_KEY": "y"}], "n": 1}) == {
        "Authorization": REDACTED,
        "nested": [{"OPENAI_API_KEY": REDACTED}],
        "n": 1,
    }


@step(id="fine")
async def fine(ctx: StepContext[Any]) -> Any:
    return ctx.input_data


class _Counting(LoggerPlugin):
    calls = 0

    @hookimpl
    def on_event(self, event: Event) -> None:
        type(self).calls += 1
        super().on_event(event)


@pytest.mark.asyncio
async def test_the_logger_is_not_called_per_event_while_info_is_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    _Counting.calls = 0
    pm = get_plugin_manager(load_entrypoints=False, block=["logger"])
    assert pm.register(_Counting(), "counting-logger") == "counting-logger"
    wf = Workflow(id="wf").then(fine).commit()
    caplog.set_level(logging.WARNING, logger="stepstream.events")
    await (await wf.create_run(plugin_manager=pm)).start({})
    assert _Counting.calls == 0
    counting = pm.get_plugin("counting-logger")
    assert counting not in [i.plugin for i in pm.hook.on_event.get_hookimpls()]
    caplog.set_level(logging.INFO, logger="stepstream.events")
    await (await wf.create_run(plugin_manager=pm)).start({})
    assert _Counting.calls == 5  # start, step-start, step-result, step-finish, finish
    assert [r.event_type for r in caplog.records].count("finish") == 1  # type: ignore[attr-defined]
    caplog.set_level(logging.ERROR, logger="stepstream.events")
    await (await wf.create_run(plugin_manager=pm)).start({})
    assert _Counting.calls == 5


@pytest.mark.asyncio
async def test_a_failed_step_is_logged_at_warning_without_event_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="stepstream.events")
    pm = get_plugin_manager(load_entrypoints=False)
    await (await Workflow(id="b").then(boom).commit().create_run(plugin_manager=pm)).start({})
    records = [r for r in caplog.records if r.name == "stepstream.events"]
    assert [(r.levelname, r.event_type, r.step_id) for r in records] == [  # type: ignore[attr-defined]
        ("WARNING", "step-error", "boom")
    ]
    assert "hunter2" not in caplog.text and "xyz123" not in caplog.text
    assert "RuntimeError: password=[REDACTED]" in caplog.text
