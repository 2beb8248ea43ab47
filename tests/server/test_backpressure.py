"""A slow HTTP client slows its run down: the stream's bounded buffer holds, memory stays flat."""

from __future__ import annotations

import threading
from typing import Any

import httpx

from stepstream import Event, StepContext, Workflow, get_plugin_manager, hookimpl, step
from stepstream.plugins.stream import BoundedChannel, StreamPlugin

from .conftest import serve_in_thread

EVENTS = 20_000
PADDING = "x" * 2_000  # 40 MB in all: far more than the loopback socket buffers hold


@step(id="firehose")
async def firehose(ctx: StepContext[Any]) -> Any:
    for i in range(EVENTS):
        await ctx.write({"i": i, "pad": PADDING})
    return {"sent": EVENTS}


class Probe:
    """Watches, on the server's loop, whether the run waits for room in its stream buffer."""

    def __init__(self) -> None:
        self.stream: StreamPlugin | None = None
        self.dispatched = 0
        self.largest = 0
        self.paused = threading.Event()
        self.paused_at = -1

    @hookimpl(trylast=True)  # after the stream plugin has put the event into its buffer
    def on_event(self, event: Event) -> None:
        self.dispatched += 1
        assert self.stream is not None
        channel = self.stream._channels.get(event.run_id)
        if isinstance(channel, BoundedChannel):
            self.largest = max(self.largest, len(channel))
            if channel._putters and not self.paused.is_set():
                self.paused_at = self.dispatched
                self.paused.set()


def test_a_client_that_stops_reading_pauses_its_run() -> None:
    probe = Probe()
    pm = get_plugin_manager(load_entrypoints=False, plugins=[probe])
    stream = pm.get_plugin("stream")
    assert isinstance(stream, StreamPlugin)
    probe.stream = stream
    served = serve_in_thread(
        {"firehose": Workflow(id="fire").then(firehose).commit()}, plugin_manager=pm
    )
    base = next(served)
    try:
        with httpx.Client(base_url=base, timeout=60) as client:
            run_id = client.post("/api/workflows/firehose/create-run").json()["runId"]
            with client.stream(
                "POST", f"/api/workflows/firehose/stream?runId={run_id}", json={"inputData": {}}
            ) as response:
                # Read nothing: once the socket buffers are full, the run must wait.
                assert probe.paused.wait(30), "the run never waited for its reader"
                assert probe.paused_at < EVENTS // 2  # it stopped early, far from the end
                stalled_at = probe.dispatched
                body = b"".join(response.iter_bytes())
        records = [r for r in body.split(b"\x1e") if r]
        assert len(records) == EVENTS + 5  # start, step-start, writes, result, finish, end
        assert stalled_at < len(records)
        assert probe.largest <= 256 + 1  # the bound (+1 while the producer is told to wait)
    finally:
        next(served, None)
