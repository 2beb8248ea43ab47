"""Token relay rate: tokens/s a ``Run.stream()`` consumer sees from one agent step, next to
the bare ``openai`` client reading the same stream from the same local server.

Run by hand (never collected by pytest)::

    .venv/bin/python benchmarks/token_relay.py [--tokens N] [--repeat N] [--quick] [--profile]

What is measured
----------------
One :class:`~stepstream.testing.ModelServer` (a stdlib threaded HTTP server on
127.0.0.1, running in a thread of this process) is started once and answers every request
with ``bulk_responder(N)``: ``N`` content chunks ``"tok1 "`` ... ``"tokN "`` (one token each)
sent as fast as the socket takes them. Every side below sends the request the agent sends
(``stream: true``, ``stream_options.include_usage``), so the server does the same work for
each, and every side makes (and closes) its own client inside the timed region, as
``Agent.stream()`` does for each answer. Sides, in table order:

``server``    the ceiling: raw ``httpx.AsyncClient`` streaming the SSE bytes and counting
              ``data:`` lines, no JSON and no SDK. If this is not far above ``bare``, the
              server (which shares the GIL with the client) is what limits every row.
``bare``      ``openai.AsyncOpenAI(max_retries=0)``, ``chat.completions.create(stream=True)``,
              iterating the chunks and keeping every non-empty ``delta.content``.
``agent``     ``Agent.stream()`` alone (no workflow): the SDK plus the stream adapter and the
              agent's tool loop; the difference to ``bare`` is the agent's cost.
``workflow``  a one-step workflow (``step.from_agent(agent)``) consumed through
              ``run.stream()``, counting ``tool-call-delta`` events; timed from
              ``create_run``. The difference to ``agent`` is the engine's cost (one pydantic
              event, one ``on_event`` hook call and one channel put/get per token).

Every side must see exactly ``N`` non-empty text deltas whose concatenation is the
server's text (``server``: exactly ``N + 4`` ``data:`` lines); otherwise the benchmark fails.

How to read the table
---------------------
Each repeat times every side once, one after the other, with ``gc.collect()`` before each;
the order alternates between repeats (forward, then backward) so that drift of a noisy
machine hits ``bare`` and the stepstream sides alike. One untimed warm-up pass of every side
comes first. ``tok/s`` is the median over repeats of ``N / elapsed`` (request start to the
end of the stream, client closed); ``us/tok`` is the median elapsed time per token;
``cpu/tok`` the median CPU time of the event-loop thread per token (the server's thread
excluded; steadier than wall time); ``ttft`` the median time from request start to the
first text delta the consumer sees.
``vs bare`` is the median over repeats of that repeat's (side tok/s / bare tok/s), with its
min-max; the target is ``workflow`` at least 0.9x ``bare``. ``spread`` is
(max - min) / median of the side's per-repeat times.

A line below the table measures the engine alone, offline and so without the network's
noise: a ``ReplayAgent`` yields the same ``N`` text deltas from a list (no HTTP, SDK or
adapter), iterated directly and relayed through a one-step workflow's ``run.stream()``; the
difference is the engine's relay cost per token, and ``bare / (bare + that)`` the ratio the
``workflow`` row would show if the agent added nothing over the bare client.

``--profile`` runs the ``workflow`` side once under cProfile (after a warm-up) and prints the
top 25 functions by own time (``tottime``). Only the event-loop thread is profiled; the
server's thread is not.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai
from openai.types.chat import ChatCompletionMessageParam

from stepstream import PluginManager, Workflow, get_plugin_manager, step
from stepstream.adapter import TextDelta
from stepstream.agents import Agent, AgentEvent
from stepstream.agents.agent import Sleep
from stepstream.run import DEFAULT_BUFFER_SIZE
from stepstream.testing import MODEL, ModelServer, bulk_responder, tokens

try:  # imported as part of the suite (python -m benchmarks)
    from benchmarks._common import machine_lines, median, print_profile
except ModuleNotFoundError:  # run as a script: benchmarks/ is on sys.path
    from _common import machine_lines, median, print_profile  # type: ignore[no-redef,import-not-found]

SIDES = ("server", "bare", "agent", "workflow")
TARGET_RATIO = 0.9
PROMPT = "go"
MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "x"},
    {"role": "user", "content": PROMPT},
]


@dataclass(frozen=True)
class Sizes:
    """How big the benchmark is."""

    tokens: int = 5000
    repeat: int = 7


QUICK = Sizes(tokens=1000, repeat=3)


# -- one sample -------------------------------------------------------------------------------


@dataclass
class Sample:
    """One timed stream: wall time, loop-thread CPU, time to first token, what was got."""

    elapsed_ns: int = 0
    cpu_ns: int = 0
    ttft_ns: int = 0
    count: int = 0
    text: str = ""


class ReplayAgent(Agent):
    """An agent whose answer is a fixed list of text deltas: no HTTP, no SDK, no adapter."""

    def __init__(self, chunks: list[str]) -> None:
        super().__init__("Relay", "x", MODEL, base_url="http://127.0.0.1:9/v1", api_key="x")
        self.chunks = chunks

    def stream(
        self,
        prompt: str,
        *,
        plugin_manager: PluginManager | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> AsyncGenerator[AgentEvent, None]:
        return self._replay()

    async def _replay(self) -> AsyncGenerator[AgentEvent, None]:
        for text in self.chunks:
            yield TextDelta(text)


class BenchmarkError(RuntimeError):
    """A side did not get exactly the tokens the server sent."""


def check(side: str, sample: Sample, n: int, expected: str | None) -> None:
    """Fail loudly unless ``sample`` holds exactly ``n`` deltas (and the expected text)."""
    if sample.count != n:
        raise BenchmarkError(f"{side}: got {sample.count} deltas/lines, expected {n}")
    if expected is not None and sample.text != expected:
        raise BenchmarkError(
            f"{side}: the concatenated text differs from the server's "
            f"({len(sample.text)} vs {len(expected)} chars)"
        )


Side = Callable[[], Awaitable[Sample]]


@dataclass
class Bench:
    """The server and the four sides' streams against it."""

    server: ModelServer
    pm: PluginManager
    n: int
    expected: str = field(init=False)

    def __post_init__(self) -> None:
        self.expected = "".join(tokens(self.n))
        self.agent = Agent("Relay", "x", MODEL, base_url=self.server.base_url, api_key="x")
        self.workflow = Workflow(id="relay").then(step.from_agent(self.agent)).commit()
        self.replay = ReplayAgent(tokens(self.n))
        self.replay_workflow = Workflow(id="replay").then(step.from_agent(self.replay)).commit()

    def sides(self) -> dict[str, Side]:
        return {
            "server": self.raw_httpx,
            "bare": self.bare_openai,
            "agent": self.agent_stream,
            "workflow": self.run_stream,
        }

    async def raw_httpx(self) -> Sample:
        """Raw SSE bytes through httpx; ``data:`` lines counted, nothing parsed."""
        body: dict[str, Any] = {"model": MODEL, "messages": MESSAGES, "stream": True}
        body["stream_options"] = {"include_usage": True}
        url = self.server.base_url + "/chat/completions"
        s = Sample()
        clock = time.perf_counter_ns
        t0 = clock()
        lines, tail = 0, b""
        async with (
            httpx.AsyncClient(timeout=60.0) as client,
            client.stream("POST", url, json=body) as response,
        ):
            async for chunk in response.aiter_bytes():
                # "data: " is 6 bytes: a match split across reads spans the last 5 bytes.
                lines += (tail + chunk).count(b"data: ")
                tail = chunk[-5:]
                # Line 1 is the role chunk; line 2 carries the first token.
                if not s.ttft_ns and lines >= 2:
                    s.ttft_ns = clock() - t0
        s.elapsed_ns = clock() - t0
        # role chunk + N content chunks + finish chunk + usage chunk + [DONE]
        s.count = lines - 4
        return s

    async def bare_openai(self) -> Sample:
        """The ``openai`` SDK alone: every non-empty ``delta.content`` kept."""
        s = Sample()
        parts: list[str] = []
        clock = time.perf_counter_ns
        t0 = clock()
        client = openai.AsyncOpenAI(base_url=self.server.base_url, api_key="x", max_retries=0)
        try:
            stream = await client.chat.completions.create(
                model=MODEL,
                messages=MESSAGES,
                stream=True,
                stream_options={"include_usage": True},
            )
            async for chunk in stream:
                if chunk.choices:
                    content = chunk.choices[0].delta.content
                    if content:
                        if not parts:
                            s.ttft_ns = clock() - t0
                        parts.append(content)
        finally:
            await client.close()
        s.elapsed_ns = clock() - t0
        s.count, s.text = len(parts), "".join(parts)
        return s

    async def agent_stream(self) -> Sample:
        """``Agent.stream()`` with no workflow: every ``TextDelta`` kept."""
        s = Sample()
        parts: list[str] = []
        clock = time.perf_counter_ns
        t0 = clock()
        async for event in self.agent.stream(PROMPT, plugin_manager=self.pm):
            if isinstance(event, TextDelta) and event.text:
                if not parts:
                    s.ttft_ns = clock() - t0
                parts.append(event.text)
        s.elapsed_ns = clock() - t0
        s.count, s.text = len(parts), "".join(parts)
        return s

    async def run_stream(self) -> Sample:
        """A one-agent-step workflow through ``run.stream()``: every ``tool-call-delta`` kept."""
        s = Sample()
        parts: list[str] = []
        clock = time.perf_counter_ns
        t0 = clock()
        run = await self.workflow.create_run(plugin_manager=self.pm)
        stream = run.stream(input_data={"prompt": PROMPT})
        async for ev in stream:
            if ev.type == "tool-call-delta" and ev.args_text_delta:
                if not parts:
                    s.ttft_ns = clock() - t0
                parts.append(ev.args_text_delta)
        result = await stream.get_workflow_state()
        s.elapsed_ns = clock() - t0
        if result.status != "success":
            raise BenchmarkError(f"workflow: run ended {result.status}: {result.error}")
        if result.result != {"text": self.expected}:
            raise BenchmarkError("workflow: the step's output text differs from the server's")
        s.count, s.text = len(parts), "".join(parts)
        return s

    async def replay_direct(self) -> int:
        """Nanoseconds to iterate the replay agent's deltas directly."""
        t0 = time.perf_counter_ns()
        count = 0
        async for event in self.replay.stream(PROMPT):
            if isinstance(event, TextDelta):
                count += 1
        elapsed = time.perf_counter_ns() - t0
        if count != self.n:
            raise BenchmarkError(f"replay agent: got {count} deltas, expected {self.n}")
        return elapsed

    async def replay_run(self) -> int:
        """Nanoseconds to relay the replay agent's deltas through ``run.stream()``."""
        t0 = time.perf_counter_ns()
        run = await self.replay_workflow.create_run(plugin_manager=self.pm)
        stream = run.stream(input_data={"prompt": PROMPT})
        parts = [ev.args_text_delta async for ev in stream if ev.type == "tool-call-delta"]
        result = await stream.get_workflow_state()
        elapsed = time.perf_counter_ns() - t0
        if result.status != "success" or "".join(parts) != self.expected:
            raise BenchmarkError(f"replay workflow: {result.status}, {len(parts)} deltas")
        return elapsed

    async def sample(self, side: str) -> Sample:
        """Run one side once (its CPU time on this thread measured) and check what it got."""
        cpu0 = time.thread_time_ns()
        s = await self.sides()[side]()
        s.cpu_ns = time.thread_time_ns() - cpu0
        check(side, s, self.n, None if side == "server" else self.expected)
        return s


# -- timing -----------------------------------------------------------------------------------


async def measure(bench: Bench, repeat: int) -> dict[str, list[Sample]]:
    """One warm-up pass, then ``repeat`` passes of every side, order alternating."""
    for side in SIDES:
        await bench.sample(side)
    samples: dict[str, list[Sample]] = {side: [] for side in SIDES}
    for r in range(repeat):
        order = SIDES if r % 2 == 0 else SIDES[::-1]
        for side in order:
            gc.collect()
            samples[side].append(await bench.sample(side))
    return samples


async def measure_engine(bench: Bench, repeat: int) -> tuple[float, float]:
    """The engine alone, offline: median us/token of the replay agent iterated directly and
    relayed through ``run.stream()`` (alternating; one warm-up each)."""
    await bench.replay_direct()
    await bench.replay_run()
    direct: list[int] = []
    relayed: list[int] = []
    for _ in range(repeat):
        gc.collect()
        direct.append(await bench.replay_direct())
        gc.collect()
        relayed.append(await bench.replay_run())
    return _per_token_us(direct, bench.n), _per_token_us(relayed, bench.n)


# -- output -----------------------------------------------------------------------------------


def header(sizes: Sizes, server: ModelServer) -> str:
    return "\n".join(
        [
            "stepstream token relay benchmark",
            *machine_lines(("openai", "httpx")),
            f"repeats {sizes.repeat} (median), tokens/stream {sizes.tokens}, "
            f"buffer_size {DEFAULT_BUFFER_SIZE}, server {server.base_url} (in-process thread)",
        ]
    )


DESCRIPTIONS = {
    "server": "raw httpx, count data: lines",
    "bare": "openai.AsyncOpenAI stream",
    "agent": "Agent.stream(), no workflow",
    "workflow": "Run.stream(), 1 agent step",
}


def _per_token_us(values: list[int], n: int) -> float:
    return median(values) / n / 1000


def table(samples: dict[str, list[Sample]], n: int) -> str:
    cols = (
        f"{'side':<10}{'what':<30}{'tok/s':>9}{'us/tok':>8}{'cpu/tok':>8}{'ttft ms':>9}"
        f"{'vs bare':>9}{'(min-max)':>13}{'spread':>8}  {'target >=0.9x':<13}"
    )
    lines = [cols, "-" * len(cols)]
    bare = samples["bare"]
    for side in SIDES:
        ss = samples[side]
        elapsed = [s.elapsed_ns for s in ss]
        med = median(elapsed)
        rate = median(n / (e / 1e9) for e in elapsed)
        cpu = _per_token_us([s.cpu_ns for s in ss], n)
        ttft = median(s.ttft_ns for s in ss) / 1e6
        # Sides of one repeat ran back to back: each repeat gives its own ratio.
        ratios = [b.elapsed_ns / s.elapsed_ns for s, b in zip(ss, bare, strict=True)]
        ratio = median(ratios)
        span = f"({min(ratios):.2f}-{max(ratios):.2f})"
        spread = (max(elapsed) - min(elapsed)) / med * 100
        verdict = ""
        if side == "workflow":
            verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
        lines.append(
            f"{side:<10}{DESCRIPTIONS[side]:<30}{rate:>9,.0f}{med / n / 1000:>8.1f}{cpu:>8.1f}"
            f"{ttft:>9.2f}{ratio:>8.2f}x{span:>13}{spread:>7.0f}%  {verdict:<13}"
        )
    return "\n".join(lines)


def notes(samples: dict[str, list[Sample]], n: int, engine: tuple[float, float]) -> str:
    def deltas(attr: str) -> str:
        us = {side: _per_token_us([getattr(s, attr) for s in samples[side]], n) for side in SIDES}
        return (
            f"SDK over raw {us['bare'] - us['server']:+.1f}, "
            f"agent over bare {us['agent'] - us['bare']:+.1f}, "
            f"engine over agent {us['workflow'] - us['agent']:+.1f}, "
            f"workflow over bare {us['workflow'] - us['bare']:+.1f}"
        )

    direct, relayed = engine
    bare = _per_token_us([s.elapsed_ns for s in samples["bare"]], n)
    predicted = bare / (bare + relayed - direct)
    return "\n".join(
        [
            f"engine alone, offline (replayed deltas, no HTTP/SDK): run.stream() {relayed:.1f} "
            f"us/token, the agent iterated directly {direct:.1f}: engine relay cost "
            f"{relayed - direct:.1f} us/token; bare us/tok / (bare + that) = {predicted:.2f}x",
            f"extra us/token, wall:       {deltas('elapsed_ns')}",
            f"extra us/token, loop CPU:   {deltas('cpu_ns')}",
            "tok/s: median of N / elapsed (request start to stream end, client made and "
            "closed inside); us/tok: median elapsed / N; cpu/tok: median CPU time of the "
            "event-loop thread / N (the server thread excluded: less noisy than wall time); "
            "vs bare: median over repeats of (side tok/s / bare tok/s). The server runs in "
            "this process and shares its GIL.",
        ]
    )


# -- entry points -----------------------------------------------------------------------------


async def run_all(sizes: Sizes) -> None:
    with ModelServer(bulk_responder(sizes.tokens)) as server:
        bench = Bench(server, get_plugin_manager(load_entrypoints=False), sizes.tokens)
        print(header(sizes, server), flush=True)
        samples = await measure(bench, sizes.repeat)
        engine = await measure_engine(bench, sizes.repeat)
    print()
    print(table(samples, sizes.tokens))
    print(notes(samples, sizes.tokens, engine))


async def run_profile(sizes: Sizes) -> None:
    with ModelServer(bulk_responder(sizes.tokens)) as server:
        bench = Bench(server, get_plugin_manager(load_entrypoints=False), sizes.tokens)
        print(header(Sizes(sizes.tokens, 1), server), flush=True)
        await bench.sample("workflow")  # warm-up
        bare = await bench.sample("bare")
        gc.collect()
        profiler = cProfile.Profile()
        profiler.enable()
        s = await bench.sample("workflow")
        profiler.disable()
    n = sizes.tokens
    print(
        f"profile of 'workflow' ({DESCRIPTIONS['workflow']}): {n} tokens, "
        f"{s.elapsed_ns / 1e6:.0f} ms under cProfile ({s.elapsed_ns / n / 1000:.1f} us/token "
        f"with profiling overhead; bare unprofiled {bare.elapsed_ns / n / 1000:.1f} us/token)"
    )
    print_profile(pstats.Stats(profiler), per=n, unit="token")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--tokens", type=int, default=None, help="tokens per stream (5000; 1000 if --quick)"
    )
    parser.add_argument(
        "--repeat", type=int, default=None, help="timed repeats, median reported (7; 3 if --quick)"
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, a few seconds")
    parser.add_argument(
        "--profile", action="store_true", help="profile the workflow side, top 25 by tottime"
    )
    args = parser.parse_args(argv)
    base = QUICK if args.quick else Sizes()
    sizes = Sizes(
        tokens=args.tokens if args.tokens is not None else base.tokens,
        repeat=args.repeat if args.repeat is not None else base.repeat,
    )
    if sizes.tokens < 1:
        parser.error("--tokens must be at least 1")
    if sizes.repeat < 1:
        parser.error("--repeat must be at least 1")
    with asyncio.Runner() as runner:
        if args.profile:
            runner.run(run_profile(sizes))
        else:
            runner.run(run_all(sizes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
