"""A chat-completions server on 127.0.0.1 that misbehaves in ways the local model cannot:
it ends a stream cleanly but early, or echoes the request's ``Authorization`` header back in
its error body, as some proxies and model servers do."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Behaviour = Literal["truncated", "echo-auth-401", "echo-auth-midstream"]


def _chunk(delta: dict[str, Any]) -> bytes:
    body = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
    }
    return f"data: {json.dumps(body)}\n\n".encode()


def _handler(behaviour: Behaviour) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read their own output."""

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            auth = self.headers.get("Authorization", "")
            if behaviour == "echo-auth-401":
                error = {
                    "message": f"invalid credentials: Authorization: {auth}",
                    "type": "invalid_request_error",
                    "headers": {"authorization": auth},
                }
                data = json.dumps({"error": error}).encode()
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            frames = [_chunk({"role": "assistant", "content": ""}), _chunk({"content": "Half"})]
            if behaviour == "echo-auth-midstream":
                error = {"message": f"upstream rejected {auth}", "type": "server_error"}
                frames.append(f"data: {json.dumps({'error': error})}\n\n".encode())
            # "truncated": no finish_reason, no usage, no [DONE]; the body ends cleanly.
            body = b"".join(frames)
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


@contextmanager
def misbehaving_model(behaviour: Behaviour) -> Iterator[str]:
    """Serve ``behaviour`` on 127.0.0.1; yield the base URL to give an agent."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(behaviour))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
