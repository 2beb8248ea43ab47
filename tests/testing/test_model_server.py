"""Tests for the local OpenAI-compatible model server, driven through the real `openai` SDK."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

from stepstream import testing as lm

# A stream broken mid-body: openai 3.x wraps it in APIConnectionError, 2.x lets httpx's out.
BROKEN_STREAM = (openai.APIConnectionError, httpx.TransportError)


def ask(text: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": text}]


def sync_client(server: Any, max_retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=max_retries)


def async_client(server: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=0)


def sse_events(body: str) -> list[Any]:
    """Split a raw SSE body into its `data:` payloads, decoding all but `[DONE]`."""
    payloads = [frame.removeprefix("data: ") for frame in body.split("\n\n") if frame]
    return [p if p == "[DONE]" else json.loads(p) for p in payloads]


def mock_chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    """Build a chunk the way mock-openai-server.mjs's `chunk()` does."""
    return {
        "id": "chatcmpl-mock-0001",
        "object": "chat.completion.chunk",
        "created": 1750000000,
        "model": "mock-gpt",
        "system_fingerprint": None,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }


def mock_usage(prompt: int, completion: int, total: int) -> dict[str, Any]:
    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}
    head = {"id": "chatcmpl-mock-0001", "object": "chat.completion.chunk", "created": 1750000000}
    return {**head, "model": "mock-gpt", "choices": [], "usage": usage}


WEATHER: ChatCompletionToolParam = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {}},
}


@pytest.mark.asyncio
async def test_text_stream_sends_one_delta_per_chunk_then_stop_and_usage(model_server: Any) -> None:
    model_server.responder = lambda body: lm.TextReply(["Hel", "lo", " world"])
    async with async_client(model_server) as client:
        stream = await client.chat.completions.create(
            model="m", messages=ask("hi"), stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
    choices = [c.choices[0] for c in chunks if c.choices]
    assert choices[0].delta.role == "assistant"
    assert [c.delta.content for c in choices[1:-1]] == ["Hel", "lo", " world"]
    assert (choices[-1].delta.content, choices[-1].finish_reason) == (None, "stop")
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3


def test_usage_is_only_sent_when_asked_for(model_server: Any) -> None:
    model_server.responder = lambda body: lm.TextReply(["a", "b"])
    with sync_client(model_server) as client:
        chunks = list(client.chat.completions.create(model="m", messages=ask("hi"), stream=True))
    assert all(c.usage is None and len(c.choices) == 1 for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_non_streaming_request_gets_the_full_text(model_server: Any) -> None:
    model_server.responder = lambda body: lm.TextReply(["Hel", "lo"])
    with sync_client(model_server) as client:
        completion = client.chat.completions.create(model="m", messages=ask("hi"))
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == "Hello"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens == 2


@pytest.mark.asyncio
async def test_tool_calls_stream_with_arguments_in_pieces(model_server: Any) -> None:
    second = lm.ToolCall("get_time", ["{}"], "call_2")
    pieces = ['{"ci', 'ty": "Pa', 'ris"}']
    model_server.responder = lambda body: lm.ToolCallReply(
        "get_weather", pieces, more_calls=[second]
    )
    calls: dict[int, dict[str, str]] = {}
    async with async_client(model_server) as client:
        stream = await client.chat.completions.create(
            model="m", messages=ask("weather?"), tools=[WEATHER], stream=True
        )
        async for chunk in stream:
            for call in chunk.choices[0].delta.tool_calls or []:
                entry = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                entry["id"] += call.id or ""
                entry["name"] += call.function.name or "" if call.function else ""
                entry["arguments"] += call.function.arguments or "" if call.function else ""
            finish_reason = chunk.choices[0].finish_reason
    assert calls == {
        0: {"id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        1: {"id": "call_2", "name": "get_time", "arguments": "{}"},
    }
    assert finish_reason == "tool_calls"


def test_non_streaming_tool_call_is_one_message(model_server: Any) -> None:
    model_server.responder = lambda body: lm.ToolCallReply("get_weather", ['{"a"', ":1}"])
    with sync_client(model_server) as client:
        completion = client.chat.completions.create(model="m", messages=ask("x"), tools=[WEATHER])
    (call,) = completion.choices[0].message.tool_calls or []
    assert call.type == "function"
    assert (call.id, call.function.name, call.function.arguments) == (
        "call_1",
        "get_weather",
        '{"a":1}',
    )
    assert completion.choices[0].finish_reason == "tool_calls"


@pytest.mark.asyncio
async def test_error_object_mid_stream_raises_api_error_after_the_deltas(model_server: Any) -> None:
    error = {"message": "overloaded", "type": "server_error", "code": "busy"}
    model_server.responder = lambda body: lm.ErrorMidStreamReply(["a", "b"], error)
    received: list[str | None] = []
    async with async_client(model_server) as client:
        stream = await client.chat.completions.create(model="m", messages=ask("x"), stream=True)
        with pytest.raises(openai.APIError) as caught:
            async for chunk in stream:
                received.append(chunk.choices[0].delta.content)
    # The SDK raises the base APIError: a mid-stream error has no status code of its own.
    assert type(caught.value) is openai.APIError
    assert (caught.value.message, caught.value.body, caught.value.code) == (
        "overloaded",
        error,
        "busy",
    )
    assert received == ["", "a", "b"]


@pytest.mark.asyncio
async def test_dropped_connection_raises_api_connection_error(model_server: Any) -> None:
    model_server.responder = lambda body: lm.DropReply(["a", "b"])
    received: list[str | None] = []
    async with async_client(model_server) as client:
        stream = await client.chat.completions.create(model="m", messages=ask("x"), stream=True)
        with pytest.raises(BROKEN_STREAM) as caught:
            async for chunk in stream:
                received.append(chunk.choices[0].delta.content)
    error = caught.value
    cause = error.__cause__ if isinstance(error, openai.APIConnectionError) else error
    assert "incomplete chunked read" in str(cause)
    assert received == ["", "a", "b"]


def test_stall_sends_the_chunks_then_holds_the_connection_until_the_read_times_out(
    model_server: Any,
) -> None:
    model_server.responder = lambda body: lm.StallReply(["a", "b"])
    received: list[str | None] = []
    client = openai.OpenAI(
        base_url=model_server.base_url, api_key="test", max_retries=0, timeout=0.3
    )
    with client, pytest.raises((openai.APITimeoutError, httpx.ReadTimeout)):
        stream = client.chat.completions.create(model="m", messages=ask("x"), stream=True)
        for chunk in stream:
            received.append(chunk.choices[0].delta.content)
    assert received == ["", "a", "b"]
    assert model_server.stream_endings == ["stalled"]


def test_stall_without_streaming_sends_no_response(model_server: Any) -> None:
    model_server.responder = lambda body: lm.StallReply()
    client = openai.OpenAI(
        base_url=model_server.base_url, api_key="test", max_retries=0, timeout=0.3
    )
    with client, pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="m", messages=ask("x"))
    assert model_server.stream_endings == ["stalled"]


def test_drop_without_streaming_also_breaks_the_connection(model_server: Any) -> None:
    model_server.responder = lambda body: lm.DropReply(["a"])
    with sync_client(model_server) as client, pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="m", messages=ask("x"))


def test_http_500_raises_internal_server_error(model_server: Any) -> None:
    error = {"message": "boom", "type": "server_error"}
    model_server.responder = lambda body: lm.HTTPErrorReply(500, {"error": error})
    with sync_client(model_server) as client, pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="m", messages=ask("x"), stream=True)
    assert caught.value.status_code == 500
    assert caught.value.body == error
    assert "boom" in caught.value.message


@pytest.mark.asyncio
async def test_http_429_raises_rate_limit_error_with_retry_after(model_server: Any) -> None:
    body = {"error": {"message": "slow down", "type": "rate_limit_error"}}
    model_server.responder = lambda _: lm.HTTPErrorReply(429, body, {"Retry-After": "1"})
    async with async_client(model_server) as client:
        with pytest.raises(openai.RateLimitError) as caught:
            await client.chat.completions.create(model="m", messages=ask("x"))
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "1"


def test_reply_sequence_lets_the_sdk_retry_a_429_into_a_success(model_server: Any) -> None:
    # Retry-After of 0 makes the SDK fall back to its ~0.5 s backoff; 0.01 is honoured as given.
    limited = lm.HTTPErrorReply(429, {"error": {"message": "wait"}}, {"Retry-After": "0.01"})
    model_server.responder = lm.ReplySequence([limited, lm.TextReply(["ok"])])
    with sync_client(model_server, max_retries=1) as client:
        completion = client.chat.completions.create(model="m", messages=ask("x"))
        assert completion.choices[0].message.content == "ok"
        assert len(model_server.requests) == 2
        # The last reply repeats once the script runs out.
        again = client.chat.completions.create(model="m", messages=ask("x"))
    assert again.choices[0].message.content == "ok"
    assert len(model_server.requests) == 3
    with pytest.raises(ValueError):
        lm.ReplySequence([])


def test_requests_are_recorded_as_parsed_bodies(model_server: Any) -> None:
    with sync_client(model_server) as client:
        client.chat.completions.create(
            model="gpt-x", messages=ask("first"), temperature=0.25, tools=[WEATHER]
        )
        client.chat.completions.create(model="gpt-y", messages=ask("second"), stream=True).close()
    first, second = model_server.requests
    assert (first["model"], first["temperature"], first["messages"]) == (
        "gpt-x",
        0.25,
        ask("first"),
    )
    assert first["tools"] == [WEATHER] and "stream" not in first
    assert (second["model"], second["stream"], second["messages"]) == ("gpt-y", True, ask("second"))


@pytest.mark.asyncio
async def test_first_delta_arrives_while_the_server_holds_back_the_rest(model_server: Any) -> None:
    first_seen, rest_sent = threading.Event(), threading.Event()

    def gated() -> Iterator[str]:
        yield "first"
        # The wait only bounds a failure: a client that buffers never sets the event.
        released = first_seen.wait(5)
        rest_sent.set()
        yield " second" if released else " (buffered)"

    model_server.responder = lambda body: lm.TextReply(gated())
    texts: list[str] = []
    async with async_client(model_server) as client:
        stream = await client.chat.completions.create(model="m", messages=ask("x"), stream=True)
        async for chunk in stream:
            text = chunk.choices[0].delta.content
            if text == "first":
                assert not rest_sent.is_set()
                first_seen.set()
            texts.append(text or "")
    assert "".join(texts) == "first second"


def test_mastra_text_stream_matches_the_mock_byte_for_byte(model_server: Any) -> None:
    payload = {"model": "mock-gpt", "stream": True, "messages": ask("hello")}
    response = httpx.post(f"{model_server.base_url}/chat/completions", json=payload)
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["transfer-encoding"] == "chunked"
    assert sse_events(response.text) == [
        mock_chunk({"role": "assistant", "content": ""}),
        *[mock_chunk({"content": text}) for text in lm.TEXT_CHUNKS],
        mock_chunk({}, "stop"),
        mock_usage(10, 10, 20),
        "[DONE]",
    ]
    assert (
        "".join(lm.TEXT_CHUNKS)
        == lm.FULL_TEXT
        == "Activities for London: 1. Visit the British Museum."
    )


def test_mastra_tool_call_then_text_once_the_tool_answered(model_server: Any) -> None:
    other: ChatCompletionToolParam = {"type": "function", "function": {"name": "other"}}
    tools = [WEATHER, other]
    payload = {"stream": True, "messages": ask("please USE_TOOL"), "tools": tools}
    response = httpx.post(f"{model_server.base_url}/chat/completions", json=payload)
    function = {"name": "get_weather", "arguments": ""}
    header = {"index": 0, "id": "call_mock_1", "type": "function", "function": function}
    pieces = ['{"city"', ':"Lon', 'don"}']
    assert sse_events(response.text) == [
        mock_chunk({"role": "assistant", "content": None, "tool_calls": [header]}),
        *[mock_chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}) for p in pieces],
        mock_chunk({}, "tool_calls"),
        mock_usage(10, 5, 15),
        "[DONE]",
    ]
    history: list[ChatCompletionMessageParam] = [
        *ask("please USE_TOOL"),
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": "call_mock_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"London"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_mock_1", "content": '{"temp": 20}'},
    ]
    with sync_client(model_server) as client:
        stream = client.chat.completions.create(
            model="mock-gpt", messages=history, tools=tools, stream=True
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        unstreamed = client.chat.completions.create(
            model="mock-gpt", messages=ask("USE_TOOL"), tools=tools
        )
    assert text == lm.FULL_TEXT
    assert unstreamed.choices[0].message.content == lm.FULL_TEXT


def test_mastra_failures(model_server: Any) -> None:
    with sync_client(model_server) as client:
        with pytest.raises(openai.InternalServerError) as http_error:
            client.chat.completions.create(model="m", messages=ask("FAIL_HTTP"), stream=True)
        with pytest.raises(openai.APIError, match="mock mid-stream failure"):
            list(
                client.chat.completions.create(
                    model="m", messages=ask("FAIL_MIDSTREAM"), stream=True
                )
            )
        with pytest.raises(BROKEN_STREAM):
            list(client.chat.completions.create(model="m", messages=ask("FAIL_ABORT"), stream=True))
    assert http_error.value.body == {
        "message": "mock upstream failure",
        "type": "server_error",
        "code": "mock_500",
    }
    # Only the last user message counts, and content parts are joined like the mock does.
    parts = [{"role": "user", "content": [{"type": "text", "text": "FAIL_"}, {"text": "HTTP"}]}]
    body = {"messages": [*ask("hi"), {"role": "assistant", "content": "x"}, *parts]}
    assert isinstance(lm.mastra_mock_responder(body), lm.HTTPErrorReply)
    assert isinstance(
        lm.mastra_mock_responder({"messages": [*ask("FAIL_HTTP"), *ask("ok")]}), lm.TextReply
    )


def test_planner_streams_a_stable_multi_line_plan_naming_the_city(model_server: Any) -> None:
    model_server.responder = lm.planner_responder(delay=0)
    forecast = {"city": "Lisbon", "maxTemp": 24, "minTemp": 15, "condition": "Light rain"}
    prompt = f"Based on the following weather forecast, suggest activities: {json.dumps(forecast)}"
    with sync_client(model_server) as client:
        runs = [
            [
                c.choices[0].delta.content
                for c in client.chat.completions.create(
                    model="m", messages=ask(prompt), stream=True
                )
                if c.choices[0].delta.content
            ]
            for _ in range(2)
        ]
    assert runs[0] == runs[1]
    plan = "".join(runs[0])
    assert plan.startswith("Activity plan for Lisbon\nForecast: Light rain, 15°C to 24°C.")
    assert "indoor option" in plan and plan.count("\n") >= 8
    assert len(runs[0]) > 20 and all(len(token.split()) == 1 for token in runs[0])


def test_bulk_responder_streams_n_tokens(model_server: Any) -> None:
    assert lm.tokens(3) == ["tok1 ", "tok2 ", "tok3 "]
    model_server.responder = lm.bulk_responder(500)
    with sync_client(model_server) as client:
        stream = client.chat.completions.create(model="m", messages=ask("x"), stream=True)
        deltas = [c.choices[0].delta.content for c in stream][1:-1]
    assert deltas == lm.tokens(500)


def test_unknown_paths_get_a_json_404_and_models_are_listed(model_server: Any) -> None:
    with httpx.Client(base_url=model_server.base_url) as http:
        missing = http.post("/embeddings", json={})
        models = http.get("/models")
    assert missing.status_code == 404
    assert missing.json() == {"error": {"message": "not found", "type": "invalid_request_error"}}
    assert [m["id"] for m in models.json()["data"]] == ["mock-gpt"]
    assert models.headers["content-length"] == str(len(models.content))
    assert model_server.requests == []


def test_a_failing_responder_answers_500(
    model_server: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    def broken(body: dict[str, Any]) -> Any:
        raise KeyError("tools")

    model_server.responder = broken
    with sync_client(model_server) as client, pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="m", messages=ask("x"))
    assert "KeyError" in caught.value.message
    assert capfd.readouterr().err == ""


def test_client_hanging_up_mid_stream_leaves_stderr_quiet(
    model_server: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    hung_up, abandoned = threading.Event(), threading.Event()
    sent: list[int] = []

    def endless() -> Iterator[str]:
        try:
            yield "first"
            hung_up.wait(5)
            for i in range(100_000):
                sent.append(i)
                yield "more "
        finally:
            abandoned.set()

    model_server.responder = lambda body: lm.TextReply(endless())
    with sync_client(model_server) as client:
        stream = client.chat.completions.create(model="m", messages=ask("x"), stream=True)
        assert [next(stream).choices[0].delta.content for _ in range(2)] == ["", "first"]
        stream.close()
        hung_up.set()
        assert abandoned.wait(5)
    assert len(sent) < 100_000
    assert capfd.readouterr().err == ""


def test_stop_cuts_a_slow_stream_short_and_closes_the_port(
    capfd: pytest.CaptureFixture[str],
) -> None:
    server = lm.ModelServer(lambda body: lm.TextReply(["slow", "never"], delay=60)).start()
    base_url = server.base_url
    with sync_client(server) as client:
        stream = client.chat.completions.create(model="m", messages=ask("x"), stream=True)
        assert [next(stream).choices[0].delta.content for _ in range(2)] == ["", "slow"]
        server.stop()  # returns although the stream had thousands of chunks left to send
        with pytest.raises(BROKEN_STREAM):
            list(stream)
    server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base_url}/models")
    with pytest.raises(RuntimeError):
        _ = server.port
    assert capfd.readouterr().err == ""


def test_each_frame_goes_out_at_once_with_no_nagle_delay(model_server: Any) -> None:
    # Small SSE frames written one by one must not wait for the client's delayed ACK: the
    # server's side of the connection has TCP_NODELAY (checked while the stream is held open).
    model_server.responder = lambda body: lm.StallReply(["a"])
    client = openai.OpenAI(
        base_url=model_server.base_url, api_key="test", max_retries=0, timeout=0.5
    )
    with client, pytest.raises((openai.APITimeoutError, httpx.ReadTimeout)):
        stream = client.chat.completions.create(model="m", messages=ask("x"), stream=True)
        for chunk in stream:
            if chunk.choices[0].delta.content == "a":  # the connection is open and held
                connections = list(model_server._httpd._connections)
                assert connections
                for sock in connections:
                    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
