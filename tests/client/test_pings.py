"""A follower over SSE skips the server's pings (SSE comments sent while a run is quiet)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from stepstream.client import AsyncClient, Client

BODY = (
    b'id: 0\nevent: start\ndata: {"type": "start", "payload": {"runId": "r1"}}\n\n'
    b": ping\n\n"
    b": ping\n\n"
    b'id: 1\nevent: finish\ndata: {"type": "finish", "payload": {"runId": "r1"}}\n\n'
)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        assert self.path == "/api/workflows/w/runs/r1/events"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def quiet_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.asyncio
async def test_pings_between_events_are_not_events(quiet_server: str) -> None:
    async with AsyncClient(quiet_server) as client:
        events = [e async for e in client.workflow("w").events("r1")]
    assert [(e.seq, e.type) for e in events] == [(0, "start"), (1, "finish")]


def test_the_blocking_client_skips_them_too(quiet_server: str) -> None:
    with Client(quiet_server) as client:
        assert [e.type for e in client.workflow("w").events("r1")] == ["start", "finish"]
