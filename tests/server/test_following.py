"""Clients other than the run's own stream never slow it; replays are paged from storage; idle
SSE streams are pinged; stream records are sent at once when the client keeps up."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import h11
import httpx

from stepstream import StepContext, Workflow, get_plugin_manager, step
from stepstream.hub import PAGE, WINDOW
from stepstream.server import create_app, serve_in_thread
from stepstream.server._following import WRITE_LIMIT
from stepstream.storage import StoredEvent
from stepstream.storage.sqlite import SQLiteStorage

from ..conformance import workflows as cases

WRITES = 4_000
PADDING = "x" * 4_000  # 16 MB in all: more than the loopback socket buffers hold


@step(id="firehose")
async def firehose(ctx: StepContext[Any]) -> Any:
    for i in range(WRITES):
        await ctx.write({"i": i, "pad": PADDING})
    return {"sent": WRITES}


class PagedStorage(SQLiteStorage):
    """Records the ``limit`` of every ``read_events`` call."""

    def __init__(self) -> None:
        super().__init__(":memory:")
        self.limits: list[int | None] = []

    async def read_events(
        self, run_id: str, after_seq: int = -1, *, limit: int | None = None
    ) -> list[StoredEvent]:
        self.limits.append(limit)
        return await super().read_events(run_id, after_seq, limit=limit)


def _serve(storage: SQLiteStorage | None = None, **options: Any) -> Iterator[str]:
    app = create_app(
        {
            "fire": Workflow(id="fire").then(firehose).commit(),
            "approvalWf": cases.i_suspend_resume(),
        },
        storage=storage,
        plugin_manager=get_plugin_manager(load_entrypoints=False),
        **options,
    )
    with serve_in_thread(app) as url:
        yield url


def _frames(body: bytes) -> list[tuple[int, str]]:
    frames = []
    for frame in body.decode().split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in frame.splitlines() if not line.startswith(":")
        )
        if fields:
            frames.append((int(fields["id"]), fields["event"]))
    return frames


def test_a_follower_that_never_reads_does_not_hold_the_run_back() -> None:
    for url in _serve():
        with (
            httpx.Client(base_url=url, timeout=60) as client,
            httpx.Client(base_url=url, timeout=60) as other,
        ):
            run_id = client.post("/api/workflows/fire/create-run").json()["runId"]
            with client.stream("GET", f"/api/workflows/fire/runs/{run_id}/events") as follower:
                # The follower reads nothing while the whole run goes by: it must still end.
                done = other.post(f"/api/workflows/fire/start-async?runId={run_id}", json={})
                assert done.json()["result"] == {"sent": WRITES}
                frames = _frames(follower.read())  # then it catches up, from storage
    assert [seq for seq, _ in frames] == list(range(WRITES + 5))
    assert frames[-1][1] == "finish"
    assert WRITES * len(PADDING) >= 16_000_000 and WRITES < WINDOW  # all in the hub's window


def test_replay_reads_the_stored_log_a_page_at_a_time() -> None:
    storage = PagedStorage()
    for url in _serve(storage):
        with httpx.Client(base_url=url, timeout=60) as client:
            run_id = client.post("/api/workflows/fire/start-async", json={}).json()
            listed = client.get("/api/workflows/fire/runs").json()["runs"][0]["runId"]
            assert run_id["status"] == "success"
            storage.limits.clear()
            frames = _frames(client.get(f"/api/workflows/fire/runs/{listed}/events").content)
            later = _frames(
                client.get(
                    f"/api/workflows/fire/runs/{listed}/events", headers={"Last-Event-ID": "3000"}
                ).content
            )
    assert [seq for seq, _ in frames] == list(range(WRITES + 5))
    assert [seq for seq, _ in later] == list(range(3001, WRITES + 5))
    assert storage.limits and set(storage.limits) == {PAGE}
    assert len(storage.limits) >= (WRITES + 5) // PAGE


def test_a_quiet_stream_is_pinged() -> None:
    for url in _serve(keepalive=0.05):
        with httpx.Client(base_url=url, timeout=30) as client:
            run = client.post(
                "/api/workflows/approvalWf/start-async", json={"inputData": {"item": "a"}}
            )
            listed = client.get("/api/workflows/approvalWf/runs").json()["runs"][0]["runId"]
            assert run.json()["status"] == "suspended"
            seen = b""
            with client.stream("GET", f"/api/workflows/approvalWf/runs/{listed}/events") as sse:
                for chunk in sse.iter_raw():
                    seen += chunk
                    if b": ping\n\n" in seen:
                        break
    events = seen.partition(b": ping")[0]
    assert b"event: step-suspended" in events  # the history first, then pings while it waits


def test_each_record_is_sent_at_once_when_the_client_keeps_up() -> None:
    acks = [threading.Event() for _ in range(5)]

    @step(id="paced")
    async def paced(ctx: StepContext[Any]) -> Any:
        # Each record waits for the client to have read the one before: a server that held a
        # record back (to join it with the next) would make this wait its full timeout.
        late = []
        for i, ack in enumerate(acks):
            await ctx.write({"i": i})
            if not await asyncio.to_thread(ack.wait, 10):
                late.append(i)
        return {"late": late}

    app = create_app(
        {"paced": Workflow(id="paced").then(paced).commit()},
        plugin_manager=get_plugin_manager(load_entrypoints=False),
    )
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        run_id = client.post("/api/workflows/paced/create-run").json()["runId"]
        records: list[Any] = []
        with client.stream(
            "POST", f"/api/workflows/paced/stream?runId={run_id}", json={"inputData": {}}
        ) as streamed:
            buffer = b""
            for chunk in streamed.iter_raw():
                buffer += chunk
                *whole, buffer = buffer.split(b"\x1e")
                for record in whole:
                    records.append(httpx.Response(200, content=record).json())
                    if records[-1]["type"] == "step-output":
                        acks[records[-1]["payload"]["output"]["i"]].set()
    outputs = [r for r in records if r["type"] == "step-result" and r["payload"]["id"] == "paced"]
    assert outputs[0]["payload"]["output"] == {"late": []}


def _http_chunks(url: str, path: str, body: bytes, *, stall: int) -> list[bytes]:
    """POST ``path`` over a raw socket and return the response body's HTTP chunks (one per
    server write); the first read waits until ``stall`` bytes are waiting (a client behind)."""
    host, port = url.removeprefix("http://").split(":")
    conn = h11.Connection(h11.CLIENT)
    with socket.create_connection((host, int(port))) as sock:
        headers = [("host", host), ("content-type", "application/json")]
        headers.append(("content-length", str(len(body))))
        sock.sendall(conn.send(h11.Request(method="POST", target=path, headers=headers)))
        sock.sendall(conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
        # MSG_WAITALL: returns once that much is waiting unread (the socket buffers hold more).
        assert len(sock.recv(stall, socket.MSG_PEEK | socket.MSG_WAITALL)) == stall
        chunks: list[bytes] = []
        current = b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(sock.recv(65536))
            elif isinstance(event, h11.Data):
                current += event.data
                if event.chunk_end:
                    chunks.append(current)
                    current = b""
            elif isinstance(event, h11.EndOfMessage):
                return chunks


def test_stream_writes_join_whole_records_while_the_client_is_behind() -> None:
    for url in _serve():
        with httpx.Client(base_url=url, timeout=60) as client:
            run_id = client.post("/api/workflows/fire/create-run").json()["runId"]
        chunks = _http_chunks(
            url, f"/api/workflows/fire/stream?runId={run_id}", b"{}", stall=60_000
        )
    records = [r for chunk in chunks for r in chunk.split(b"\x1e")[:-1]]
    assert all(chunk.endswith(b"\x1e") for chunk in chunks)  # no record cut between writes
    assert [json.loads(r)["type"] for r in records][-1] == "finish"
    assert len(records) == WRITES + 5
    assert max(chunk.count(b"\x1e") for chunk in chunks) > 1  # joined while it was behind
    assert max(len(chunk) for chunk in chunks) <= WRITE_LIMIT + len(PADDING) + 100


def test_a_watcher_that_never_reads_does_not_hold_the_run_back() -> None:
    for url in _serve():
        with (
            httpx.Client(base_url=url, timeout=60) as client,
            httpx.Client(base_url=url, timeout=60) as other,
        ):
            run_id = client.post("/api/workflows/fire/create-run").json()["runId"]
            with client.stream("GET", f"/api/workflows/fire/watch?runId={run_id}") as watching:
                done = other.post(f"/api/workflows/fire/start-async?runId={run_id}", json={})
                assert done.json()["result"] == {"sent": WRITES}
                records = [json.loads(json.loads(r)) for r in watching.read().split(b"\x1e") if r]
    # Each record holds the whole state, so a backlog keeps only the latest; the last is final.
    assert records[-1]["payload"]["workflowState"]["status"] == "success"
    assert "currentStep" not in records[-1]["payload"]
    stamps = [r["eventTimestamp"] for r in records]
    assert stamps == sorted(stamps)
