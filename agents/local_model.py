"""A deterministic OpenAI-compatible chat-completions server for tests and offline demos.

`ModelServer` serves 127.0.0.1 from a background thread, so sync and asyncio code can both
reach it through the real `openai` SDK. A *responder* turns each request body into a `Reply`:
a text stream, tool calls, an error mid-stream, a dropped connection or an HTTP error.
`ReplySequence` scripts retries. `mastra_mock_responder` is the Mastra conformance mock,
`planner_responder` the offline weather demo's model, `bulk_responder` the benchmarks' one.
Only the standard library is used, so the server can ship inside the package.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final, TypeAlias

__all__ = [
    "FULL_TEXT", "TEXT_CHUNKS", "DropReply", "ErrorMidStreamReply", "HTTPErrorReply",
    "ModelServer", "Reply", "ReplySequence", "Responder", "TextReply", "ToolCall",
    "ToolCallReply", "bulk_responder", "mastra_mock_responder", "planner_responder", "tokens",
]  # fmt: skip

COMPLETION_ID: Final = "chatcmpl-mock-0001"
CREATED: Final = 1750000000
MODEL: Final = "mock-gpt"
TEXT_CHUNKS: Final[tuple[str, ...]] = (
    "Activities", " for", " London", ":", " 1.", " Visit", " the", " British", " Museum", ".",
)  # fmt: skip
FULL_TEXT: Final = "".join(TEXT_CHUNKS)


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
class HTTPErrorReply:
    """Answer with HTTP `status`, the JSON `body` and extra `headers` such as Retry-After."""

    status: int
    body: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)


Reply: TypeAlias = TextReply | ToolCallReply | ErrorMidStreamReply | DropReply | HTTPErrorReply
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


def bulk_responder(n: int) -> Responder:
    """Return a responder that streams `tokens(n)` as fast as the socket takes them."""
    chunks = tokens(n)
    return lambda body: TextReply(chunks)


def _truthy(value: object) -> bool:
    # The Mastra mock tests `body.stream` with JavaScript truthiness, where [] and {} are true.
    return value not in (None, False, 0, "")


def _last_user_text(body: Mapping[str, Any]) -> str:
    messages = body.get("messages")
    for message in reversed(messages if isinstance(messages, list) else []):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            parts = [p.get("text") for p in content if isinstance(p, dict)]
            return "".join(p for p in parts if isinstance(p, str))
    return ""


def mastra_mock_responder(body: dict[str, Any]) -> Reply:
    """Answer exactly like /work/shared/conformance/mastra/mock-openai-server.mjs.

    The last user message picks the behaviour: "FAIL_HTTP" gives a 500; "USE_TOOL" streams
    a call to the first offered tool until a `tool` message is in the history;
    "FAIL_ABORT" and "FAIL_MIDSTREAM" break the stream after three chunks; anything else
    streams `TEXT_CHUNKS`. A request that does not stream gets `FULL_TEXT` in one body.
    """
    prompt = _last_user_text(body)
    if "FAIL_HTTP" in prompt:
        error = {"message": "mock upstream failure", "type": "server_error", "code": "mock_500"}
        return HTTPErrorReply(500, {"error": error})
    text_usage = {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}
    if not _truthy(body.get("stream")):
        return TextReply(TEXT_CHUNKS, usage=text_usage)
    tools, messages = body.get("tools"), body.get("messages")
    answered = isinstance(messages, list) and any(
        isinstance(m, dict) and m.get("role") == "tool" for m in messages
    )
    if "USE_TOOL" in prompt and isinstance(tools, list) and tools and not answered:
        usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        pieces = ['{"city"', ':"Lon', 'don"}']
        return ToolCallReply(tools[0]["function"]["name"], pieces, "call_mock_1", usage=usage)
    # The mock tests for an abort first, so an abort wins when both words appear.
    if "FAIL_ABORT" in prompt:
        return DropReply(TEXT_CHUNKS[:3], delay=0.005)
    if "FAIL_MIDSTREAM" in prompt:
        error = {"message": "mock mid-stream failure", "type": "server_error"}
        return ErrorMidStreamReply(TEXT_CHUNKS[:3], {**error, "code": "mock_midstream"}, 0.005)
    return TextReply(TEXT_CHUNKS, delay=0.005, usage=text_usage)


def planner_responder(delay: float = 0.02) -> Responder:
    """Return a responder that streams an activity plan for the forecast in the prompt.

    The plan comes word by word, each chunk keeping its leading whitespace, and is the
    same for the same prompt; `delay` paces it so that a person can watch it stream.
    """

    def respond(body: dict[str, Any]) -> Reply:
        return TextReply(re.findall(r"\s*\S+", _plan(_last_user_text(body))), delay=delay)

    return respond


_OUTDOOR = (
    "Walk through the old town", "Have a picnic in the park", "Cycle along the river",
    "Browse an open-air market", "Take a boat tour", "Climb to the best viewpoint",
)  # fmt: skip
_INDOOR = (
    "Visit the art museum", "Eat at a covered food hall", "Try an indoor climbing wall",
    "Explore the science centre", "Read in a bookshop cafe", "Join a cooking class",
)  # fmt: skip


def _plan(prompt: str) -> str:
    def field(names: str, value: str) -> str | None:
        # Reading the forecast's JSON by pattern copes with it being embedded in prose.
        found = re.search(rf'"(?:{names})"\s*:\s*"?({value})', prompt, re.IGNORECASE)
        return found and found.group(1)

    number = r"-?\d+(?:\.\d+)?"
    named = re.search(r"\b(?:for|in)\s+([A-Z][\w'-]*(?:\s+[A-Z][\w'-]*)*)", prompt)
    city = field("city|location|name", r'[^"]+') or (named and named.group(1)) or "your city"
    condition = field("conditions?|description", r'[^"]+') or "Mixed weather"
    high = field("max_?temp|temperature_?max|temperature", number)
    low = field("min_?temp|temperature_?min", number)
    rain = float(field("precipitation_?chance", number) or 0)
    wet = rain >= 50 or any(w in condition.lower() for w in ("rain", "shower", "storm", "snow"))
    temps = f", {low}°C to {high}°C" if low and high else f", up to {high}°C" if high else ""
    tip = "Bring water and sunscreen."
    if wet or float(high or 20) < 10:
        tip = "Dress for the weather and keep an indoor option close."
    # Hashing the prompt varies plans between cities while keeping each one stable.
    first = zlib.crc32(prompt.encode()) % 6
    day = _INDOOR if wet else _OUTDOOR
    return (
        f"Activity plan for {city}\n"
        f"Forecast: {condition}{temps}.\n\n"
        f"Morning:\n- {day[first]}.\n\n"
        f"Afternoon:\n- {day[(first + 2) % 6]}.\n\n"
        f"Evening:\n- {_INDOOR[(first + 4) % 6]}.\n\n"
        f"Tip: {tip}\n"
    )


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


def _completion(reply: TextReply | ToolCallReply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": None}
    if isinstance(reply, TextReply):
        chunks = list(reply.chunks)
        message["content"], finish, usage = "".join(chunks), "stop", _usage(len(chunks))
    else:
        message["tool_calls"] = [_call(c, "".join(c.arguments_pieces)) for c in reply.calls]
        finish, usage = "tool_calls", _usage(len(reply.calls))
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
    return {**_head("chat.completion"), "choices": [choice], "usage": dict(reply.usage or usage)}


def _events(
    reply: TextReply | ToolCallReply | ErrorMidStreamReply | DropReply, body: Mapping[str, Any]
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
        if isinstance(reply, DropReply):
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


class _HTTPServer(ThreadingHTTPServer):
    """A threading server that keeps its connections so that stopping can break them."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], owner: ModelServer) -> None:
        self.owner = owner
        self.stopping = threading.Event()
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # ThreadingMixIn forgets daemon threads, and stop() has to join them.
        args = (request, client_address)
        thread = threading.Thread(target=self.process_request_thread, args=args, daemon=True)
        with self._lock:
            self._connections[request] = thread
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        with self._lock:
            self._connections.pop(request, None)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up, or stop() breaking a connection, is routine here.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)

    def break_connections(self, timeout: float) -> None:
        """Shut every open connection down and wait up to `timeout` for the handlers."""
        with self._lock:
            connections = list(self._connections.items())
        for sock, _ in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for _, thread in connections:
            thread.join(max(0.0, deadline - time.monotonic()))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Say nothing: `ModelServer.requests` is the log, and tests read stderr."""

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            model = {"id": MODEL, "object": "model", "created": CREATED, "owned_by": "stepstream"}
            self._json(200, {"object": "list", "data": [model]})
        else:
            self._not_found()

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not self.path.endswith("/chat/completions"):
            self._not_found()
            return
        try:
            parsed = json.loads(raw or b"{}")
        except ValueError:
            parsed = {}
        # Like the Mastra mock, answer a body that cannot be read as if it were empty.
        body: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
        self.server.owner._record(body)
        try:
            reply = self.server.owner.responder(body)
        except Exception as exc:
            error = {"message": f"responder failed: {exc!r}", "type": "server_error"}
            self._json(500, {"error": error})
            return
        try:
            self._send(reply, body)
        except OSError:
            # The client went away mid-response (it stopped reading and closed the stream).
            self.server.owner._ended("client-gone")

    def _send(self, reply: Reply, body: dict[str, Any]) -> None:
        stream = _truthy(body.get("stream"))
        if isinstance(reply, HTTPErrorReply):
            self._json(reply.status, reply.body, reply.headers)
        elif isinstance(reply, ErrorMidStreamReply) and not stream:
            self._json(500, {"error": reply.error})
        elif isinstance(reply, TextReply | ToolCallReply) and not stream:
            self._json(200, _completion(reply))
        elif isinstance(reply, DropReply) and not stream:
            self._drop()
        else:
            # Chunked encoding sends each event as soon as it is written and keeps the
            # connection reusable afterwards, as the Mastra mock's Node server does.
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for payload, pause in _events(reply, body):
                data = payload if isinstance(payload, str) else json.dumps(payload, **_COMPACT)
                frame = f"data: {data}\n\n".encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
                # Waiting on the stop event, not sleeping, lets stop() cut a slow stream short.
                if self.server.stopping.wait(pause):
                    self._drop()
                    return
            if isinstance(reply, DropReply):
                self._drop()
                self.server.owner._ended("dropped")
            else:
                self.wfile.write(b"0\r\n\r\n")
                self.server.owner._ended("completed")

    def _json(self, status: int, payload: object, headers: Mapping[str, str] = {}) -> None:
        data = json.dumps(payload, **_COMPACT).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _not_found(self) -> None:
        self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def _drop(self) -> None:
        # A FIN mid-body rather than a reset, which could discard chunks not yet read.
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True


_COMPACT: Final[dict[str, Any]] = {"separators": (",", ":")}


class ModelServer:
    """An OpenAI-compatible server on 127.0.0.1, run by a background thread.

    Use it as a context manager or call `start()` and `stop()`. Every parsed
    chat-completions request body is appended to `requests` in arrival order, and
    `responder` may be replaced while the server runs; the next request uses the new one.
    """

    def __init__(self, responder: Responder = mastra_mock_responder, *, port: int = 0) -> None:
        """Prepare a server answering with `responder` on `port`, where 0 picks a free one."""
        self.responder = responder
        self.requests: list[dict[str, Any]] = []
        self.stream_endings: list[str] = []
        """How each streamed response ended: ``completed``, ``dropped`` or ``client-gone``."""
        self.stream_ended = threading.Event()
        """Set whenever a streamed response ends (clear it to wait for the next)."""
        self._requested_port = port
        self._lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """Return the port being listened on; the server must be running."""
        if self._httpd is None:
            raise RuntimeError("ModelServer is not running")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """Return the URL to give an OpenAI client as `base_url`."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> ModelServer:
        """Bind the socket and start serving, returning the server for chaining."""
        if self._httpd is not None:
            raise RuntimeError("ModelServer is already running")
        self._httpd = _HTTPServer(("127.0.0.1", self._requested_port), self)
        # serve_forever notices shutdown() only between polls, so a short poll keeps stop() fast.
        serve = self._httpd.serve_forever
        self._thread = threading.Thread(target=serve, args=(0.05,), name="ModelServer", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop serving, break open connections and close the socket; twice is harmless.

        Handlers still streaming get up to `timeout` seconds to notice and finish.
        """
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        self._httpd = self._thread = None
        httpd.stopping.set()
        httpd.shutdown()
        httpd.break_connections(timeout)
        httpd.server_close()
        thread.join(timeout)

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _record(self, body: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(body)

    def _ended(self, how: str) -> None:
        with self._lock:
            self.stream_endings.append(how)
        self.stream_ended.set()
