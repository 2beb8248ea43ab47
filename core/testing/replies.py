"""What the local model server sends: reply types, and their SSE and JSON framing.

A *responder* turns each request body into a :data:`Reply`; the server frames it as OpenAI's
chat-completions API does (SSE chunks when ``stream`` is true, one JSON body otherwise).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

__all__ = [
    "COMPLETION_ID", "CREATED", "MODEL", "DropReply", "ErrorMidStreamReply", "HTTPErrorReply",
    "Reply", "ReplySequence", "Responder", "StallReply", "TextReply", "ToolCall", "ToolCallReply",
    "completion_body", "sse_payloads", "tokens", "truthy",
]  # fmt: skip

COMPLETION_ID: Final = "chatcmpl-mock-0001"
CREATED: Final = 1750000000
MODEL: Final = "mock-gpt"


@dataclass(frozen=True)
class TextReply:
    """Stream one content delta per chunk, pausing `delay` seconds after each.

    A generator is consumed lazily while streaming, so a test can pace the server with
    events. An explicit `usage` is always sent; otherwise usage is sent only when the
    request sets `stream_options.include_usage`.
    """

    chunks: Iterable[str]
    delay: float = 0.0
    usage: Mapping[str, int] | None = None


@dataclass(frozen=True)
class ToolCall:
    """A function call whose JSON arguments are streamed in pieces."""

    name: str
    arguments_pieces: Sequence[str]
    call_id: str = "call_1"


@dataclass(frozen=True)
class ToolCallReply:
    """Stream a call to `name`, then each of `more_calls`, ending with "tool_calls"."""

    name: str
    arguments_pieces: Sequence[str]
    call_id: str = "call_1"
    more_calls: Sequence[ToolCall] = ()
    usage: Mapping[str, int] | None = None

    @property
    def calls(self) -> list[ToolCall]:
        """Return every call in the order it is streamed."""
        return [ToolCall(self.name, self.arguments_pieces, self.call_id), *self.more_calls]


@dataclass(frozen=True)
class ErrorMidStreamReply:
    """Stream the chunks, then `data: {"error": ...}`, and end without `[DONE]`.

    A request that does not stream gets the error as an HTTP 500 body instead.
    """

    chunks: Sequence[str]
    error: Mapping[str, Any]
    delay: float = 0.0


@dataclass(frozen=True)
class DropReply:
    """Stream the chunks, then close the connection before the body is complete.

    A request that does not stream has its connection closed before any response.
    """

    chunks: Sequence[str]
    delay: float = 0.0


@dataclass(frozen=True)
class StallReply:
    """Stream the chunks, then send nothing more, holding the connection open.

    The connection stays open until the client leaves or the server stops, so a client's
    read timeout is what ends the answer. A request that does not stream gets no response.
    """

    chunks: Sequence[str] = ()
    delay: float = 0.0


@dataclass(frozen=True)
class HTTPErrorReply:
    """Answer with HTTP `status`, the JSON `body` and extra `headers` such as Retry-After."""

    status: int
    body: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)


Reply: TypeAlias = (
    TextReply | ToolCallReply | ErrorMidStreamReply | DropReply | StallReply | HTTPErrorReply
)
Responder: TypeAlias = Callable[[dict[str, Any]], Reply]


class ReplySequence:
    """A responder giving each request the next of `replies`, then repeating the last."""

    def __init__(self, replies: Sequence[Reply]) -> None:
        """Script `replies`, which must not be empty."""
        if not replies:
            raise ValueError("ReplySequence needs at least one reply")
        self._pending, self._last = iter(replies[:-1]), replies[-1]
        self._lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> Reply:
        """Return the next scripted reply whatever `body` asks."""
        with self._lock:
            return next(self._pending, self._last)


def tokens(n: int) -> list[str]:
    """Return `n` short chunks, "tok1 " to "tok{n} ", for benchmarks."""
    return [f"tok{i} " for i in range(1, n + 1)]


def truthy(value: object) -> bool:
    # The Mastra mock tests `body.stream` with JavaScript truthiness, where [] and {} are true.
    return value not in (None, False, 0, "")


def _head(kind: str = "chat.completion.chunk") -> dict[str, Any]:
    return {"id": COMPLETION_ID, "object": kind, "created": CREATED, "model": MODEL}


def _chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
    return {**_head(), "system_fingerprint": None, "choices": [choice]}


def _usage(completion: int) -> dict[str, int]:
    return {"prompt_tokens": 10, "completion_tokens": completion, "total_tokens": 10 + completion}


def _call(call: ToolCall, arguments: str) -> dict[str, Any]:
    function = {"name": call.name, "arguments": arguments}
    return {"id": call.call_id, "type": "function", "function": function}


def completion_body(reply: TextReply | ToolCallReply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": None}
    if isinstance(reply, TextReply):
        chunks = list(reply.chunks)
        message["content"], finish, usage = "".join(chunks), "stop", _usage(len(chunks))
    else:
        message["tool_calls"] = [_call(c, "".join(c.arguments_pieces)) for c in reply.calls]
        finish, usage = "tool_calls", _usage(len(reply.calls))
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
    return {**_head("chat.completion"), "choices": [choice], "usage": dict(reply.usage or usage)}


def sse_payloads(
    reply: TextReply | ToolCallReply | ErrorMidStreamReply | DropReply | StallReply,
    body: Mapping[str, Any],
) -> Iterator[tuple[object, float]]:
    """Yield each SSE payload of a streamed reply with the pause that should follow it."""
    if isinstance(reply, ToolCallReply):
        for index, call in enumerate(reply.calls):
            header = [{"index": index, **_call(call, "")}]
            first = {"role": "assistant", "content": None, "tool_calls": header}
            yield _chunk(first if index == 0 else {"tool_calls": header}), 0.0
            for piece in call.arguments_pieces:
                arguments = {"index": index, "function": {"arguments": piece}}
                yield _chunk({"tool_calls": [arguments]}), 0.0
        finish, count = "tool_calls", len(reply.calls)
    else:
        yield _chunk({"role": "assistant", "content": ""}), 0.0
        count = 0
        for text in reply.chunks:
            yield _chunk({"content": text}), reply.delay
            count += 1
        if isinstance(reply, DropReply | StallReply):
            return
        if isinstance(reply, ErrorMidStreamReply):
            yield {"error": dict(reply.error)}, 0.0
            return
        finish = "stop"
    yield _chunk({}, finish), 0.0
    usage, options = reply.usage, body.get("stream_options")
    if usage is None and isinstance(options, dict) and options.get("include_usage"):
        usage = _usage(count)
    if usage is not None:
        yield {**_head(), "choices": [], "usage": dict(usage)}, 0.0
    yield "[DONE]", 0.0
