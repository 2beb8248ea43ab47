"""The ``server`` workloads: the HTTP server against the library, uvicorn in its own process.

``python -m benchmarks --only server`` serves ``_served.py`` (``writesWf``, ``chattyWf``,
``agentWf``) with uvicorn in a child process on 127.0.0.1 and measures issue 15's targets:

``server-events``     one ``writesWf`` run (``server_writes`` x ``ctx.write``, ``+ 5`` events),
                      events/s: ``in-process`` (``Run.stream()`` in this loop, no storage: the
                      floor), ``in-process+sqlite`` (``SQLiteStorage(":memory:")``, the store
                      ``create_app`` uses by default, so that the storage's share is told apart
                      from HTTP's), ``http`` (``stepstream.client.AsyncClient``: create-run to
                      the end of the stream), timed side by side as every suite workload; and
                      ``http (@mastra/client-js)``, the real ``@mastra/client-js`` 0.10.14 under
                      node (``mastra_stream.mjs``, timed by node from create-run to the end;
                      runs whose records that client lost are counted in the notes). Every run
                      is checked complete and in order. The notes give each side's CPU per
                      event in one more, untimed run (this process's, and for ``http`` the
                      server process's: ``/proc/PID/stat``, 10 ms ticks).
``server-followers``  ``chattyWf`` (``server_chatty`` writes of 200 bytes) run by ``start-async``
                      alone, then with ``server_followers`` SSE clients (raw sockets of this
                      process, reading as fast as they can) attached before it starts: its
                      duration with them against alone (target <= 1.2x), and the server's peak
                      RSS growth meanwhile (target < 50 MiB); every follower must see ``finish``.
``server-ttft``       one agent step answered by a local model server in this process: ms from
                      create-run to the first ``tool-call-delta``, in process and over HTTP
                      (target: within 5 ms of in process), medians.

``STEPSTREAM_BENCH_SERVER_BASELINE=DIR`` also serves an older stepstream source tree ``DIR``
(holding ``core/``, ``plugins/``, ``agents/``: ``git archive REV core plugins agents | tar -x
-C DIR``) and adds its ``http`` and ``http (@mastra/client-js)`` rows as ``baseline ...``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from stepstream import PluginManager, Workflow, get_plugin_manager, step
from stepstream.agents import Agent
from stepstream.client import AsyncClient
from stepstream.storage.sqlite import SQLiteStorage
from stepstream.testing import MODEL, ModelServer, TextReply, tokens

from ._common import median, run_async
from ._report import Report
from ._served import writer
from ._suite import Measured, Row, Workload, measure, rows
from ._workloads import Sizes

__all__ = ["server_workloads"]

HERE = Path(__file__).parent
MASTRA = HERE.parent / "tests/server/mastra_client/node_modules/@mastra/client-js/dist/index.js"
BASELINE = "STEPSTREAM_BENCH_SERVER_BASELINE"
TTFT_REPEAT = 11
ALONE_REPEAT = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _baseline_path(src: Path | None) -> Iterator[str | None]:
    """A PYTHONPATH entry under which ``import stepstream`` is the tree ``src``."""
    if src is None:
        yield None
        return
    with tempfile.TemporaryDirectory() as tmp:
        pkg = Path(tmp) / "stepstream"
        shutil.copytree(src / "core", pkg)
        (pkg / "plugins").symlink_to((src / "plugins").resolve())
        (pkg / "agents").symlink_to((src / "agents").resolve())
        yield tmp


@contextlib.contextmanager
def served(src: Path | None, model_url: str, sizes: Sizes) -> Iterator[tuple[str, int]]:
    """``_served.py`` in its own process (the tree ``src``, or this one); yield its URL, pid."""
    port = _free_port()
    with _baseline_path(src) as path:
        env = dict(os.environ)
        if path is not None:
            env["PYTHONPATH"] = path
        args = [sys.executable, str(HERE / "_served.py"), str(port), model_url]
        sized = [str(sizes.server_writes), str(sizes.server_chatty)]
        proc = subprocess.Popen([*args, *sized], env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(f"{url}/api/workflows", timeout=5).raise_for_status()
                    break
                except httpx.TransportError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("the benchmark server did not start") from None
                    time.sleep(0.05)
            yield url, proc.pid
        finally:
            proc.terminate()
            proc.wait(15)


def rss_mib(pid: int) -> float:
    """The resident memory of process ``pid``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


# -- server-events ----------------------------------------------------------------------------


class _Count:
    """Checks one ``writesWf`` run's events as they arrive: ``start`` first, every
    ``step-output`` carrying the next ``i``, ``finish`` last, ``writes + 5`` in all."""

    def __init__(self, writes: int) -> None:
        self.writes, self.count, self.outputs, self.last = writes, 0, 0, ""

    def see(self, kind: str, output: Any = None) -> None:
        if self.count == 0 and kind != "start":
            raise RuntimeError(f"the first event is {kind!r}, not 'start'")
        self.count += 1
        self.last = kind
        if kind == "step-output":
            if output != {"i": self.outputs}:
                raise RuntimeError(f"step-output #{self.outputs} carried {output!r}")
            self.outputs += 1

    def done(self) -> None:
        if self.last != "finish" or self.count != self.writes + 5:
            raise RuntimeError(f"{self.count} events of {self.writes + 5}, last {self.last!r}")


def _in_process(wf: Workflow, pm: PluginManager, writes: int, *, db: bool) -> Any:
    async def block() -> None:
        storage = SQLiteStorage(":memory:") if db else None
        check = _Count(writes)
        run = await wf.create_run(plugin_manager=pm, storage=storage)
        stream = run.stream()
        async for event in stream:
            check.see(event.type, getattr(event, "output", None))
        result = await stream.get_workflow_state()
        if storage is not None:
            await storage.close()
        check.done()
        if result.status != "success":
            raise RuntimeError(f"the run ended {result.status!r}")

    return block


def _over_http(client: AsyncClient, writes: int) -> Any:
    async def block() -> None:
        check = _Count(writes)
        async for event in client.workflow("writesWf").stream({}):
            check.see(event.type, getattr(event, "output", None))
        check.done()

    return block


def cpu_s(pid: int) -> float:
    """The CPU seconds process ``pid`` has used (user and system, every thread)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _events(
    servers: dict[str, tuple[str, int]], sizes: Sizes, pm: PluginManager
) -> tuple[Measured, str]:
    """``server-events``, every side timed in this loop's turns (see the module docstring);
    and a note of each side's CPU per event in one more, untimed run: this process's, and for
    ``http`` the server process's too."""
    n = sizes.server_writes
    wf = writer(n, "")
    blocks = {
        "in-process": _in_process(wf, pm, n, db=False),
        "in-process+sqlite": _in_process(wf, pm, n, db=True),
    }
    async with contextlib.AsyncExitStack() as stack:
        for prefix, (url, _) in servers.items():
            client = await stack.enter_async_context(AsyncClient(url, timeout=120))
            blocks[f"{prefix}http"] = _over_http(client, n)
        w = Workload("server-events", "events/s", n + 5, blocks, floor="in-process", rate=True)
        measured = await measure(w, sizes.repeat)
        parts = []
        for name, block in blocks.items():
            pid = next((p for prefix, (_, p) in servers.items() if name == f"{prefix}http"), None)
            here, there = time.process_time(), 0.0 if pid is None else cpu_s(pid)
            await block()
            used = f"{(time.process_time() - here) * 1e6 / (n + 5):.1f}"
            if pid is not None:
                used += f" + server {(cpu_s(pid) - there) * 1e6 / (n + 5):.1f}"
            parts.append(f"{name} {used}")
    return measured, "server-events: CPU us per event (one run): " + "; ".join(parts)


def mastra_rate(url: str, writes: int) -> tuple[float, bool]:
    """Events/s of one ``writesWf`` stream read with ``@mastra/client-js``; and whether every
    record arrived."""
    env = {**os.environ, "MASTRA_CLIENT_JS": str(MASTRA), "MASTRA_BASE_URL": url}
    env["MASTRA_WORKFLOW_ID"] = "writesWf"
    node = shutil.which("node") or "node"
    done = subprocess.run(
        [node, str(HERE / "mastra_stream.mjs")], env=env, capture_output=True, text=True, check=True
    )
    got = json.loads(done.stdout)
    whole = got["chunks"] == writes + 5 and got["inOrder"]
    return got["chunks"] / (got["ms"] / 1000), whole


def _mastra_row(report: Report, system: str, url: str, sizes: Sizes) -> Row:
    try:
        measured = [mastra_rate(url, sizes.server_writes) for _ in range(sizes.repeat)]
    except (subprocess.CalledProcessError, OSError, ValueError) as exc:
        return Row("server-events", system, "events/s", math.nan, note=f"{exc}"[:300])
    rates = [rate for rate, _ in measured]
    lost = sum(not whole for _, whole in measured)
    if lost:  # a known limit of that client, not the server's (see _following.WRITE_LIMIT)
        report.extra_notes.append(
            f"server-events: {system} lost records in {lost} of {len(measured)} runs"
        )
    return Row("server-events", system, "events/s", median(rates), rates)


# -- server-followers -------------------------------------------------------------------------


async def _follow(url: str, run_id: str, ready: asyncio.Event, joined: list[int]) -> bool:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    path = f"/api/workflows/chattyWf/runs/{run_id}/events"
    writer.write(f"GET {path} HTTP/1.1\r\nhost: {host}\r\n\r\n".encode())
    await reader.readuntil(b"\r\n\r\n")
    joined.append(1)
    if len(joined) == joined[0]:
        ready.set()
    tail = b""
    try:
        while chunk := await reader.read(65536):
            if b"event: finish" in tail + chunk:
                return True
            tail = chunk[-32:]
        return False
    finally:
        writer.close()


async def followed_run(url: str, pid: int, followers: int) -> tuple[float, float, int]:
    """Seconds of one ``chattyWf`` start-async with ``followers`` attached; the server's peak
    RSS growth (MiB) meanwhile; how many followers saw ``finish``."""
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        run_id = (await client.post("/api/workflows/chattyWf/create-run")).json()["runId"]
        base = rss_mib(pid)
        peak = base
        ready = asyncio.Event()
        joined = [followers + 1]  # the first slot holds the count to reach
        tasks = [
            asyncio.ensure_future(_follow(url, run_id, ready, joined)) for _ in range(followers)
        ]
        if followers:
            await ready.wait()
        sampling = True

        async def sample() -> None:
            nonlocal peak
            while sampling:
                peak = max(peak, rss_mib(pid))
                await asyncio.sleep(0.02)

        sampler = asyncio.ensure_future(sample())
        t0 = time.perf_counter()
        done = await client.post(f"/api/workflows/chattyWf/start-async?runId={run_id}", json={})
        elapsed = time.perf_counter() - t0
        done.raise_for_status()
        finished = sum(await asyncio.gather(*tasks))
        sampling = False
        await sampler
        peak = max(peak, rss_mib(pid))
    return elapsed, peak - base, finished


def _followers(prefix: str, url: str, pid: int, sizes: Sizes) -> list[Row]:
    n = sizes.server_followers
    alone = [run_async(followed_run(url, pid, 0))[0] for _ in range(ALONE_REPEAT)]
    followed, growth, finished = run_async(followed_run(url, pid, n))
    name = f"{prefix}{n:,} followers"
    if finished != n:
        note = f"{n - finished} of {n} followers did not see finish"
        return [Row("server-followers", name, "ms/run", math.nan, note=note)]
    base = statistics.median(alone)
    return [
        Row("server-followers", f"{prefix}alone", "ms/run", base * 1e3, [a * 1e3 for a in alone]),
        Row("server-followers", name, "ms/run", followed * 1e3, vs_floor=followed / base),
        Row("server-followers", name, "MiB RSS growth", growth),
    ]


# -- server-ttft ------------------------------------------------------------------------------


async def _first_token(events: Any) -> float:
    """Milliseconds until the first ``tool-call-delta`` of ``events`` (read to the end)."""
    t0 = time.perf_counter()
    first: float | None = None
    async for event in events:
        if first is None and event.type == "tool-call-delta":
            first = time.perf_counter() - t0
    if first is None:
        raise RuntimeError("no token")
    return first * 1000


async def _ttfts(url: str | None, model_url: str) -> list[float]:
    """One warm-up, then :data:`TTFT_REPEAT` times from creating an agent run to its first
    token: in process (one workflow, whose agent keeps its client) or over HTTP (one client,
    its connection kept)."""
    if url is None:
        agent = Agent("Relay", "x", MODEL, base_url=model_url, api_key="x")
        wf = Workflow(id="agent").then(step.from_agent(agent)).commit()
        pm = get_plugin_manager(load_entrypoints=False)

        async def events() -> Any:
            run = await wf.create_run(plugin_manager=pm)
            async for event in run.stream({"prompt": "go"}):
                yield event

        return [await _first_token(events()) for _ in range(TTFT_REPEAT + 1)][1:]
    async with AsyncClient(url) as client:
        remote = client.workflow("agentWf")
        return [
            await _first_token(remote.stream({"prompt": "go"})) for _ in range(TTFT_REPEAT + 1)
        ][1:]


def _ttft(urls: dict[str, str], model_url: str) -> list[Row]:
    local = run_async(_ttfts(None, model_url))
    out = [Row("server-ttft", "in-process", "ms to 1st token", median(local), local)]
    for prefix, url in urls.items():
        http = run_async(_ttfts(url, model_url))
        row = Row("server-ttft", f"{prefix}http", "ms to 1st token", median(http), http)
        row.vs_floor = row.value / out[0].value
        out.append(row)
    return out


# -- the workloads ----------------------------------------------------------------------------


def server_workloads(
    report: Report, sizes: Sizes, pm: PluginManager, log: Callable[[str], None]
) -> None:
    """The three ``server-*`` workloads into ``report``: this tree's server, and the
    baseline's when ``STEPSTREAM_BENCH_SERVER_BASELINE`` names one."""
    baseline = os.environ.get(BASELINE)
    trees = {"": None, **({"baseline ": Path(baseline)} if baseline else {})}
    reply = TextReply(tokens(sizes.server_tokens))
    with contextlib.ExitStack() as stack:
        model = stack.enter_context(ModelServer(lambda body: reply))
        servers = {
            p: stack.enter_context(served(src, model.base_url, sizes)) for p, src in trees.items()
        }
        urls = {prefix: url for prefix, (url, _) in servers.items()}
        log("  server: events in process and over HTTP ...")
        measured, cpu = run_async(_events(servers, sizes, pm))
        report.rows += rows(measured, reference="")
        report.extra_notes.append(cpu)
        for prefix, url in urls.items():
            report.rows.append(_mastra_row(report, f"{prefix}http (@mastra/client-js)", url, sizes))
        log(f"  server: {sizes.server_followers:,} SSE followers of one run ...")
        for prefix, (url, pid) in servers.items():
            report.rows += _followers(prefix, url, pid, sizes)
        log("  server: time to first token ...")
        report.rows += _ttft(urls, model.base_url)
