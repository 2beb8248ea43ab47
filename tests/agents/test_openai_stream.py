"""The chunk-to-agent-chunk state machine, fed the SDK's own chunk models (no sockets)."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.chat import ChatCompletionChunk

from stepstream.adapter import Finish, StreamAdapter, TextDelta, ToolCallDelta, ToolCallRequest
from stepstream.agents import OpenAIStreamAdapter
from stepstream.errors import ModelError


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> Any:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return ChatCompletionChunk.model_validate(
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": choices,
            **extra,
        }
    )


def test_text_deltas_pass_through_in_order_unmerged() -> None:
    adapter = OpenAIStreamAdapter()
    assert isinstance(adapter, StreamAdapter)
    out = []
    for piece in [{"role": "assistant", "content": ""}, {"content": "Hel"}, {"content": "lo"}]:
        out += adapter.feed(chunk(piece))
    out += adapter.feed(chunk({}, "stop"))
    out += adapter.feed(
        chunk(None, usage={"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5})
    )
    out += adapter.finish()
    assert out == [
        TextDelta("Hel"),
        TextDelta("lo"),
        Finish("stop", {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}, "m"),
    ]
    assert adapter.text == "Hello"


def test_tool_calls_are_assembled_from_pieces() -> None:
    adapter = OpenAIStreamAdapter()
    first = {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": ""}}
    second = {"id": "call_2", "type": "function", "function": {"name": "time", "arguments": "{}"}}
    feeds = [
        {"role": "assistant", "tool_calls": [{"index": 0, **first}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"city"'}}]},
        {"tool_calls": [{"index": 1, **second}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": ':"Oslo"}'}}]},
    ]
    deltas = [d for f in feeds for d in adapter.feed(chunk(f))]
    adapter.feed(chunk({}, "tool_calls"))
    assert deltas == [
        ToolCallDelta(0, "call_1", "weather", '{"city"'),
        ToolCallDelta(1, "call_2", "time", "{}"),
        ToolCallDelta(0, "call_1", "weather", ':"Oslo"}'),
    ]
    assert adapter.finish() == [
        ToolCallRequest("call_1", "weather", '{"city":"Oslo"}'),
        ToolCallRequest("call_2", "time", "{}"),
        Finish("tool_calls", {}, "m"),
    ]


def test_incomplete_tool_call_is_an_error() -> None:
    adapter = OpenAIStreamAdapter()
    adapter.feed(chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}))
    with pytest.raises(ModelError, match="incomplete tool call at index 0"):
        adapter.finish()


def test_an_empty_response_just_finishes() -> None:
    assert OpenAIStreamAdapter().finish() == [Finish(None, {})]
