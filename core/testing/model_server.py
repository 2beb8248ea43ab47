"""A deterministic OpenAI-compatible chat-completions server for tests and offline demos.

`ModelServer` serves 127.0.0.1 from a background thread, so sync and asyncio code can both
reach it through the real `openai` SDK. A *responder* turns each request body into a `Reply`:
a text stream, tool calls, an error mid-stream, a dropped or stalled connection or an HTTP
error (429 with ``Retry-After``, 500...).
The replies are in :mod:`.replies` (`ReplySequence` scripts retries), the ready-made
responders in :mod:`.responders`; :mod:`stepstream.testing` exports them all.
Only the standard library is used, so the server can ship inside the package.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final

from .replies import (
    CREATED,
    MODEL,
    DropReply,
    ErrorMidStreamReply,
    HTTPErrorReply,
    Reply,
    Responder,
    StallReply,
    TextReply,
    ToolCallReply,
    completion_body,
    sse_payloads,
    truthy,
)
from .responders import mastra_mock_responder

__all__ = ["ModelServer"]


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
    # Each SSE frame is its own small write: without TCP_NODELAY, Nagle's algorithm holds the
    # first frame after the headers until the client's delayed ACK (about 40 ms on Linux).
    disable_nagle_algorithm = True
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
        stream = truthy(body.get("stream"))
        if isinstance(reply, HTTPErrorReply):
            self._json(reply.status, reply.body, reply.headers)
        elif isinstance(reply, ErrorMidStreamReply) and not stream:
            self._json(500, {"error": reply.error})
        elif isinstance(reply, TextReply | ToolCallReply) and not stream:
            self._json(200, completion_body(reply))
        elif isinstance(reply, DropReply) and not stream:
            self._drop()
        elif isinstance(reply, StallReply) and not stream:
            self._stall()
        else:
            # Chunked encoding sends each event as soon as it is written and keeps the
            # connection reusable afterwards, as the Mastra mock's Node server does.
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for payload, pause in sse_payloads(reply, body):
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
            elif isinstance(reply, StallReply):
                self._stall()
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

    def _stall(self) -> None:
        self.server.owner._ended("stalled")
        self.server.stopping.wait()
        self._drop()

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
        """How each streamed response ended: ``completed``, ``dropped``, ``client-gone`` or
        ``stalled`` (recorded when a :class:`StallReply` stops sending)."""
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
