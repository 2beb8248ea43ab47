"""What the HTTP server costs: events/s and time to first token, in-process vs over HTTP.

Run by hand (never collected by pytest)::

    .venv/bin/python benchmarks/server.py [--quick] [--repeat N]
    .venv/bin/python benchmarks/server.py --targets [--quick] [--baseline DIR] [--followers N]

(``--targets``: issue 15's targets with uvicorn in its own process; see ``_server_targets``.)

What is measured
----------------
Two workflows, each consumed three ways ("sides") in the same process run:

``in-process``  ``run.stream()`` in this thread's event loop, no storage: the library used
                directly.
``in-proc+db``  the same with ``storage=SQLiteStorage(":memory:")``, the store
                ``create_app`` uses by default, so that the storage's share of the server's
                cost is told apart from HTTP's.
``http``        ``create_app({...})`` served by a real uvicorn on 127.0.0.1, run by a
                background thread of this process (its own event loop; it shares the GIL
                with the client), as ``tests/server/conftest.py`` does. One
                ``httpx.AsyncClient`` (made once, kept alive) sends ``POST create-run``, then
                streams ``POST /api/workflows/<key>/stream?runId=...``; records are split on
                the byte 0x1E and each is decoded with ``json.loads``, as a client must.

Workloads:

``events``  one step doing ``await ctx.write({"i": i})`` for ``i`` in ``range(N)``: ``N + 5``
            events (``start``, ``step-start``, ``N`` x ``step-output``, ``step-result``,
            ``step-finish``, ``finish``). ``ev/s`` is the run's events / elapsed, timed from
            ``create_run`` (``create-run`` for ``http``) to the end of the stream.
``ttft``    one agent step (``step.from_agent(Agent(..., base_url=server.base_url))``)
            answered by a local :class:`~stepstream.testing.ModelServer` streaming
            ``tokens(T)`` as fast as its socket takes them. ``ttft`` is the time from
            ``create_run`` / ``create-run`` to the first ``tool-call-delta`` the consumer
            sees; ``tok/s`` is ``T`` / elapsed to the end of the stream.

Every sample is checked, and the benchmark fails loudly otherwise: exactly the expected
events in order (every ``step-output`` carrying the next ``i``; every token, their
concatenation the model's text), ``finish`` last, and the run ended ``success`` (for ``http``
read back from ``GET /runs/<runId>/execution-result`` after the timed region).

How to read the table
---------------------
One untimed warm-up pass of every side, then ``--repeat`` passes, ``gc.collect()`` before
each sample, the side order alternating between passes (forward, then backward) so that a
drifting machine hits every side alike. Figures are medians over the repeats. ``vs in-proc``
is the median over passes of (side rate / in-process rate of the same pass) for ``events``
and of (side ttft / in-process ttft) for ``ttft``. ``cpu us/ev`` is the process CPU time per
event (every thread: for ``http`` the server's work is included). ``spread`` is
(max - min) / median of the side's elapsed times.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import starlette
import uvicorn

import stepstream
from stepstream import PluginManager, Step, StepContext, Workflow, get_plugin_manager, step
from stepstream.agents import Agent
from stepstream.server import create_app, serve_in_thread
from stepstream.storage.sqlite import SQLiteStorage
from stepstream.testing import MODEL, ModelServer, TextReply, tokens

SIDES = ("in-process", "in-proc+db", "http")
RS = b"\x1e"
PROMPT = "go"
EVENTS_KEY = "writesWf"
AGENT_KEY = "agentWf"


@dataclass(frozen=True)
class Sizes:
    """How big the benchmark is."""

    writes: int = 5000  # events: ctx.write calls of the one step
    tokens: int = 200  # ttft: tokens the model streams
    repeat: int = 7  # events: timed passes
    ttft_repeat: int = 21  # ttft: timed passes


QUICK = Sizes(writes=1000, tokens=200, repeat=3, ttft_repeat=5)


class BenchmarkError(RuntimeError):
    """A side did not get exactly the events the run produces."""


@dataclass
class Sample:
    """One timed run: wall time, process CPU, time to first token, what the consumer saw."""

    elapsed_ns: int = 0
    cpu_ns: int = 0
    ttft_ns: int = 0
    events: int = 0


# -- the workflows ----------------------------------------------------------------------------


def events_workflow(n: int) -> Workflow:
    """One step writing ``{"i": i}`` for ``i`` in ``range(n)``."""

    async def writer(ctx: StepContext[Any]) -> Any:
        for i in range(n):
            await ctx.write({"i": i})
        return {"written": n}

    return Workflow(id="writes").then(Step(id="writer", execute=writer)).commit()


def agent_workflow(base_url: str) -> Workflow:
    """One agent step answered by the local model server."""
    agent = Agent("Relay", "x", MODEL, base_url=base_url, api_key="x")
    return Workflow(id="agent").then(step.from_agent(agent)).commit()


# -- what each consumer must see --------------------------------------------------------------


class Checker:
    """Checks one run's events as they arrive (wire dicts), then the whole."""

    def __init__(self, side: str, workload: str, expected_text: str | None, writes: int) -> None:
        self.side = side
        self.workload = workload
        self.expected_text = expected_text
        self.writes = writes
        self.count = 0
        self.outputs = 0
        self.deltas: list[str] = []
        self.last = ""

    def see(self, kind: str, wire: dict[str, Any]) -> bool:
        """Record one event; whether it is a non-empty token delta."""
        if self.count == 0 and kind != "start":
            self.fail(f"first event is {kind!r}, not 'start'")
        self.count += 1
        self.last = kind
        if kind == "step-output":
            got = wire["payload"]["output"]
            if got != {"i": self.outputs}:
                self.fail(f"step-output #{self.outputs} carried {got!r}")
            self.outputs += 1
        elif kind == "tool-call-delta" and wire["argsTextDelta"]:
            self.deltas.append(wire["argsTextDelta"])
            return True
        return False

    def done(self, status: str) -> None:
        if status != "success":
            self.fail(f"the run ended {status!r}")
        if self.last != "finish":
            self.fail(f"the last event is {self.last!r}, not 'finish'")
        if self.workload == "events":
            if self.outputs != self.writes or self.count != self.writes + 5:
                self.fail(
                    f"{self.outputs} step-output of {self.writes}, "
                    f"{self.count} events of {self.writes + 5}"
                )
        elif "".join(self.deltas) != self.expected_text:
            self.fail(f"{len(self.deltas)} token deltas whose text differs from the model's")

    def fail(self, why: str) -> None:
        raise BenchmarkError(f"{self.workload}/{self.side}: {why}")


# -- the HTTP server --------------------------------------------------------------------------


@contextmanager
def http_server(workflows: dict[str, Workflow], pm: PluginManager) -> Iterator[str]:
    """Serve ``create_app(workflows)`` with uvicorn on 127.0.0.1 from a thread; yield its URL."""
    with serve_in_thread(create_app(workflows, plugin_manager=pm)) as url:
        yield url


async def records(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """The JSON records of a stream response, split on the byte 0x1E."""
    tail = b""
    async for chunk in response.aiter_bytes():
        parts = (tail + chunk).split(RS)
        tail = parts.pop()
        for part in parts:
            yield json.loads(part)
    if tail.strip():
        raise BenchmarkError(f"the stream ended inside a record ({len(tail)} bytes)")


# -- the sides --------------------------------------------------------------------------------


Side = Callable[[str], Awaitable[Sample]]


@dataclass
class Bench:
    """The workflows, the HTTP server's URL and client, and one sample of any side."""

    pm: PluginManager
    sizes: Sizes
    workflows: dict[str, Workflow]
    url: str
    client: httpx.AsyncClient
    expected_text: str = field(init=False)

    def __post_init__(self) -> None:
        self.expected_text = "".join(tokens(self.sizes.tokens))

    def checker(self, side: str, workload: str) -> Checker:
        return Checker(side, workload, self.expected_text, self.sizes.writes)

    def input_data(self, workload: str) -> Any:
        return {"prompt": PROMPT} if workload == "ttft" else None

    async def in_process(self, workload: str, *, db: bool) -> Sample:
        side = "in-proc+db" if db else "in-process"
        wf = self.workflows[EVENTS_KEY if workload == "events" else AGENT_KEY]
        storage = SQLiteStorage(":memory:") if db else None
        check = self.checker(side, workload)
        s = Sample()
        clock = time.perf_counter_ns
        cpu0, t0 = time.process_time_ns(), clock()
        run = await wf.create_run(plugin_manager=self.pm, storage=storage)
        stream = run.stream(self.input_data(workload))
        async for event in stream:
            if check.see(event.type, event.to_wire()) and not s.ttft_ns:
                s.ttft_ns = clock() - t0
        result = await stream.get_workflow_state()
        s.elapsed_ns, s.cpu_ns = clock() - t0, time.process_time_ns() - cpu0
        if storage is not None:
            await storage.close()
        check.done(result.status)
        s.events = check.count
        return s

    async def over_http(self, workload: str) -> Sample:
        key = EVENTS_KEY if workload == "events" else AGENT_KEY
        base = f"{self.url}/api/workflows/{key}"
        check = self.checker("http", workload)
        s = Sample()
        clock = time.perf_counter_ns
        cpu0, t0 = time.process_time_ns(), clock()
        created = await self.client.post(f"{base}/create-run")
        created.raise_for_status()
        run_id = created.json()["runId"]
        body = {"inputData": self.input_data(workload)}
        params = {"runId": run_id}
        async with self.client.stream("POST", f"{base}/stream", params=params, json=body) as r:
            r.raise_for_status()
            async for wire in records(r):
                if check.see(wire["type"], wire) and not s.ttft_ns:
                    s.ttft_ns = clock() - t0
        s.elapsed_ns, s.cpu_ns = clock() - t0, time.process_time_ns() - cpu0
        status = await self.client.get(f"{base}/runs/{run_id}/execution-result")
        status.raise_for_status()
        check.done(status.json()["status"])
        s.events = check.count
        return s

    async def sample(self, workload: str, side: str) -> Sample:
        if side == "http":
            return await self.over_http(workload)
        return await self.in_process(workload, db=side == "in-proc+db")


async def measure(bench: Bench, workload: str, repeat: int) -> dict[str, list[Sample]]:
    """One warm-up pass, then ``repeat`` passes of every side, order alternating."""
    for side in SIDES:
        await bench.sample(workload, side)
    samples: dict[str, list[Sample]] = {side: [] for side in SIDES}
    for r in range(repeat):
        for side in SIDES if r % 2 == 0 else SIDES[::-1]:
            gc.collect()
            samples[side].append(await bench.sample(workload, side))
    return samples


# -- output -----------------------------------------------------------------------------------


def header(sizes: Sizes, model_url: str) -> str:
    return "\n".join(
        [
            f"stepstream {stepstream.__version__} HTTP server benchmark",
            f"python {platform.python_version()} ({platform.python_implementation()}), "
            f"uvicorn {uvicorn.__version__}, starlette {starlette.__version__}, "
            f"httpx {httpx.__version__}",
            f"machine {platform.platform()}, {platform.machine()}, cpu_count {os.cpu_count()}",
            f"events: {sizes.writes} ctx.write + 5 events/run, {sizes.repeat} repeats; "
            f"ttft: {sizes.tokens} tokens/answer, {sizes.ttft_repeat} repeats (medians); "
            f"model {model_url} and uvicorn both threads of this process",
        ]
    )


def _spread(values: list[int]) -> float:
    return (max(values) - min(values)) / statistics.median(values) * 100


def events_table(samples: dict[str, list[Sample]]) -> str:
    cols = (
        f"{'events':<12}{'ev/s':>10}{'us/ev':>8}{'cpu us/ev':>11}{'vs in-proc':>12}"
        f"{'(min-max)':>13}{'spread':>8}"
    )
    lines = [cols, "-" * len(cols)]
    base = samples["in-process"]
    for side in SIDES:
        ss = samples[side]
        rates = [x.events / (x.elapsed_ns / 1e9) for x in ss]
        us = statistics.median(x.elapsed_ns / x.events for x in ss) / 1000
        cpu = statistics.median(x.cpu_ns / x.events for x in ss) / 1000
        ratios = [b.elapsed_ns / x.elapsed_ns for x, b in zip(ss, base, strict=True)]
        span = f"({min(ratios):.2f}-{max(ratios):.2f})"
        spread = _spread([x.elapsed_ns for x in ss])
        lines.append(
            f"{side:<12}{statistics.median(rates):>10,.0f}{us:>8.1f}{cpu:>11.1f}"
            f"{statistics.median(ratios):>11.2f}x{span:>13}{spread:>7.0f}%"
        )
    return "\n".join(lines)


def ttft_table(samples: dict[str, list[Sample]], n: int) -> str:
    cols = (
        f"{'ttft':<12}{'ttft ms':>10}{'(min-max)':>16}{'vs in-proc':>12}{'tok/s':>10}"
        f"{'total ms':>10}{'spread':>8}"
    )
    lines = [cols, "-" * len(cols)]
    base = samples["in-process"]
    for side in SIDES:
        ss = samples[side]
        ttfts = [x.ttft_ns / 1e6 for x in ss]
        span = f"({min(ttfts):.2f}-{max(ttfts):.2f})"
        ratios = [x.ttft_ns / b.ttft_ns for x, b in zip(ss, base, strict=True)]
        rate = statistics.median(n / (x.elapsed_ns / 1e9) for x in ss)
        total = statistics.median(x.elapsed_ns for x in ss) / 1e6
        spread = _spread([x.elapsed_ns for x in ss])
        lines.append(
            f"{side:<12}{statistics.median(ttfts):>10.2f}{span:>16}"
            f"{statistics.median(ratios):>11.2f}x{rate:>10,.0f}{total:>10.1f}{spread:>7.0f}%"
        )
    return "\n".join(lines)


NOTES = (
    "ev/s, tok/s: median over repeats of events (tokens) / elapsed, from create_run "
    "(HTTP: POST create-run) to the stream's end; vs in-proc: events: median of (side ev/s "
    "/ in-process ev/s), ttft: median of (side ttft / in-process ttft), pass by pass; "
    "cpu us/ev: process CPU (all threads) per event; every run checked complete and in order."
)


# -- entry points -----------------------------------------------------------------------------


async def run_all(sizes: Sizes) -> None:
    pm = get_plugin_manager(load_entrypoints=False)
    reply = TextReply(tokens(sizes.tokens))
    with ModelServer(lambda body: reply) as model:
        workflows = {
            EVENTS_KEY: events_workflow(sizes.writes),
            AGENT_KEY: agent_workflow(model.base_url),
        }
        print(header(sizes, model.base_url), flush=True)
        with http_server(workflows, pm) as url:
            async with httpx.AsyncClient(timeout=120.0) as client:
                bench = Bench(pm, sizes, workflows, url, client)
                events = await measure(bench, "events", sizes.repeat)
                ttft = await measure(bench, "ttft", sizes.ttft_repeat)
    print()
    print(events_table(events))
    print()
    print(ttft_table(ttft, sizes.tokens))
    print(NOTES)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="timed repeats of the events workload, median reported (7; 3 if --quick); "
        "the ttft workload does 3x as many",
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, a few seconds")
    parser.add_argument(
        "--targets",
        action="store_true",
        help="measure issue 15's targets instead, uvicorn in its own process (_server_targets)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="DIR",
        help="with --targets: also serve the stepstream source tree DIR (core/, plugins/, "
        "agents/), e.g. `git archive REV core plugins agents | tar -x -C DIR`",
    )
    parser.add_argument("--followers", type=int, default=1000, help="with --targets (1000)")
    args = parser.parse_args(argv)
    if args.targets:
        from _server_targets import Targets, report

        targets = Targets(followers=args.followers)
        if args.quick:
            targets = Targets(writes=5000, chatty=500, followers=args.followers, repeat=2)
        print(report(targets, args.baseline))
        return 0
    sizes = QUICK if args.quick else Sizes()
    if args.repeat is not None:
        if args.repeat < 1:
            parser.error("--repeat must be at least 1")
        sizes = Sizes(sizes.writes, sizes.tokens, args.repeat, 3 * args.repeat)
    with asyncio.Runner() as runner:
        runner.run(run_all(sizes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
