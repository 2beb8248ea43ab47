"""The HTTP server's targets (issue 15), with uvicorn in a process of its own.

``python benchmarks/server.py --targets [--baseline DIR]`` measures, for the server of this
tree and (``--baseline``) for the one of an older stepstream source tree ``DIR`` (holding
``core/``, ``plugins/``, ``agents/``, e.g. ``git archive main core plugins agents``):

``python ev/s``   one ``writesWf`` run streamed with ``stepstream.client.AsyncClient``
                  (create-run to end of stream), events / elapsed, median of the repeats;
                  every run checked complete and in order.
``mastra ev/s``   the same with the real ``@mastra/client-js`` 0.10.14 (``mastra_stream.mjs``
                  under node); runs whose records the client lost are counted apart.
``followers``     ``chattyWf`` (200-byte writes) run by ``start-async`` with no follower, then
                  with ``--followers`` SSE clients (raw sockets of this process, reading as
                  fast as they can) attached before it starts: its duration with them / without
                  (target <= 1.2), and the server's peak RSS growth while they follow (target
                  < 50 MiB); every follower must see ``finish``.
``ttft``          one agent step answered by a local model server in this process: the time
                  from create-run to the first ``tool-call-delta`` over HTTP (Python client)
                  minus the same in process (target <= 5 ms), medians.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from stepstream import Workflow, get_plugin_manager, step
from stepstream.agents import Agent
from stepstream.client import AsyncClient
from stepstream.testing import MODEL, ModelServer, TextReply, tokens

HERE = Path(__file__).parent
MASTRA = HERE.parent / "tests/server/mastra_client/node_modules/@mastra/client-js/dist/index.js"


@dataclass(frozen=True)
class Targets:
    """How big the measurements are."""

    writes: int = 20_000
    chatty: int = 2_000
    followers: int = 1_000
    tokens: int = 200
    repeat: int = 5


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
def served(src: Path | None, model_url: str, t: Targets) -> Iterator[tuple[str, int]]:
    """``_served.py`` in its own process; yield its URL and pid."""
    port = _free_port()
    with _baseline_path(src) as path:
        env = dict(os.environ)
        if path is not None:
            env["PYTHONPATH"] = path
        args = [sys.executable, str(HERE / "_served.py"), str(port), model_url]
        proc = subprocess.Popen([*args, str(t.writes), str(t.chatty)], env=env)
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


async def python_rate(url: str, t: Targets) -> float:
    """Events/s of one ``writesWf`` stream read with ``stepstream.client``."""
    async with AsyncClient(url, timeout=120) as client:
        wf = client.workflow("writesWf")
        t0 = time.perf_counter()
        outputs = count = 0
        async for event in wf.stream({}):
            count += 1
            if event.type == "step-output":
                if event.output != {"i": outputs}:  # type: ignore[union-attr]
                    raise RuntimeError(f"step-output #{outputs} out of order")
                outputs += 1
        elapsed = time.perf_counter() - t0
    if count != t.writes + 5:
        raise RuntimeError(f"{count} events of {t.writes + 5}")
    return count / elapsed


def mastra_rate(url: str, t: Targets) -> tuple[float, bool]:
    """Events/s of one ``writesWf`` stream read with ``@mastra/client-js``; and whether every
    record arrived."""
    env = {**os.environ, "MASTRA_CLIENT_JS": str(MASTRA), "MASTRA_BASE_URL": url}
    env["MASTRA_WORKFLOW_ID"] = "writesWf"
    node = shutil.which("node") or "node"
    done = subprocess.run(
        [node, str(HERE / "mastra_stream.mjs")], env=env, capture_output=True, text=True, check=True
    )
    got = json.loads(done.stdout)
    whole = got["chunks"] == t.writes + 5 and got["inOrder"]
    return got["chunks"] / (got["ms"] / 1000), whole


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


async def ttft_ms(url: str | None, model_url: str) -> float:
    """Milliseconds from creating an agent run to its first token, over HTTP or in process
    (the whole stream is read either way)."""
    first: float | None = None
    t0 = time.perf_counter()
    if url is None:
        agent = Agent("Relay", "x", MODEL, base_url=model_url, api_key="x")
        wf = Workflow(id="agent").then(step.from_agent(agent)).commit()
        t0 = time.perf_counter()
        run = await wf.create_run(plugin_manager=get_plugin_manager(load_entrypoints=False))
        async for event in run.stream({"prompt": "go"}):
            if first is None and event.type == "tool-call-delta":
                first = time.perf_counter() - t0
    else:
        async with AsyncClient(url) as client:
            t0 = time.perf_counter()
            async for event in client.workflow("agentWf").stream({"prompt": "go"}):
                if first is None and event.type == "tool-call-delta":
                    first = time.perf_counter() - t0
    if first is None:
        raise RuntimeError("no token")
    return first * 1000


async def measure(src: Path | None, t: Targets) -> dict[str, Any]:
    """Every figure for the server of ``src`` (None: this tree)."""
    reply = TextReply(tokens(t.tokens))
    out: dict[str, Any] = {}
    with ModelServer(lambda body: reply) as model, served(src, model.base_url, t) as (url, pid):
        await python_rate(url, t)  # warm-up
        out["python ev/s"] = statistics.median([await python_rate(url, t) for _ in range(t.repeat)])
        rates = [mastra_rate(url, t) for _ in range(t.repeat)]
        out["mastra ev/s"] = statistics.median(r for r, _ in rates)
        out["mastra runs losing records"] = sum(not whole for _, whole in rates)
        alone = [(await followed_run(url, pid, 0))[0] for _ in range(3)]
        with_followers, growth, finished = await followed_run(url, pid, t.followers)
        out["run alone s"] = statistics.median(alone)
        out["run with followers s"] = with_followers
        out["followers ratio"] = with_followers / statistics.median(alone)
        out["follower RSS growth MiB"] = growth
        out["followers that saw finish"] = finished
        await ttft_ms(url, model.base_url)
        http = statistics.median([await ttft_ms(url, model.base_url) for _ in range(11)])
        local = statistics.median([await ttft_ms(None, model.base_url) for _ in range(11)])
        out["ttft http ms"], out["ttft in-process ms"] = http, local
        out["ttft http - in-process ms"] = http - local
    return out


def report(t: Targets, baseline: Path | None) -> str:
    """Measure (this tree, and the baseline if given) and lay the figures side by side."""
    now = asyncio.run(measure(None, t))
    before = asyncio.run(measure(baseline, t)) if baseline is not None else None
    lines = [
        f"server targets: {t.writes} writes/run, {t.repeat} repeats; {t.followers} followers of"
        f" {t.chatty} x 200 B writes; ttft over {t.tokens} tokens; uvicorn in its own process",
        f"{'figure':32} {'this tree':>14} {'baseline':>14}",
    ]
    for key, value in now.items():
        old = "" if before is None else f"{before[key]:14,.2f}"
        lines.append(f"{key:32} {value:14,.2f} {old:>14}")
    return "\n".join(lines)
