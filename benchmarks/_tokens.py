"""The ``tokens`` workload: one model answer of ``N`` tokens streamed to a consumer.

One local :class:`~stepstream.testing.ModelServer` (a thread of this process) answers every
request with ``bulk_responder(N)``: ``N`` one-token chunks as fast as the socket takes them.
Every side sends the request the agent sends (``stream: true``,
``stream_options.include_usage``) and must see exactly the ``N`` deltas, whose concatenation
is the server's text:

``stepstream``  an agent step (``step.from_agent(Agent(...))``) through ``Run.stream()``,
                every ``tool-call-delta`` kept; the step's output text is checked too;
``openai``      the bare ``openai.AsyncOpenAI`` client streaming the same answer, every
                non-empty ``delta.content`` kept (the floor of the workload);
``langgraph`` / ``llama-index-workflows``  one node / step calling the bare client and
                relaying each delta through their custom stream;
``httpx``       (apart: no ratios) raw SSE bytes through httpx, ``data:`` lines counted and
                nothing parsed: what the server and the socket cost alone.

The agent and the bare client each keep one client for the whole benchmark, as an
application does (the agent's is made on its first answer in the loop and reused). The
event loop thread's CPU time of every stepstream answer is recorded: CPU per relayed token
is in the notes (the server's thread is not counted).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import openai
from openai.types.chat import ChatCompletionMessageParam

from stepstream import PluginManager, Workflow, step
from stepstream.agents import Agent
from stepstream.testing import MODEL, ModelServer, bulk_responder, tokens

from . import _langgraph, _llama
from ._common import median
from ._shapes import BenchmarkError, Unit, close_clients
from ._suite import Workload, repeated

PROMPT = "go"
MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "x"},
    {"role": "user", "content": PROMPT},
]


class TokenSides:
    """The sides' streams against one server; ``cpu_ns`` holds each stepstream answer's
    loop-thread CPU time."""

    def __init__(self, server: ModelServer, pm: PluginManager, n: int) -> None:
        self.server, self.pm, self.n = server, pm, n
        self.expected = "".join(tokens(n))
        self.agent = Agent("Relay", "x", MODEL, base_url=server.base_url, api_key="x")
        self.workflow = Workflow(id="relay").then(step.from_agent(self.agent)).commit()
        self.cpu_ns: list[int] = []
        self._client: openai.AsyncOpenAI | None = None

    def _check(self, side: str, parts: list[str]) -> None:
        if len(parts) != self.n or "".join(parts) != self.expected:
            raise BenchmarkError(f"{side}: got {len(parts)} deltas, expected {self.n} of the text")

    async def stepstream(self) -> None:
        cpu0 = time.thread_time_ns()
        run = await self.workflow.create_run(plugin_manager=self.pm)
        stream = run.stream(input_data={"prompt": PROMPT})
        parts = [
            ev.args_text_delta
            async for ev in stream
            if ev.type == "tool-call-delta" and ev.args_text_delta
        ]
        result = await stream.get_workflow_state()
        self.cpu_ns.append(time.thread_time_ns() - cpu0)
        if result.status != "success" or result.result != {"text": self.expected}:
            raise BenchmarkError(f"stepstream: run ended {result.status}: {result.error}")
        self._check("stepstream", parts)

    async def bare(self) -> None:
        if self._client is None or self._client.is_closed():
            self._client = openai.AsyncOpenAI(
                base_url=self.server.base_url, api_key="x", max_retries=0
            )
        stream = await self._client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        parts: list[str] = []
        async for chunk in stream:
            if chunk.choices:
                content = chunk.choices[0].delta.content
                if content:
                    parts.append(content)
        self._check("openai", parts)

    async def raw(self) -> None:
        body: dict[str, Any] = {"model": MODEL, "messages": MESSAGES, "stream": True}
        body["stream_options"] = {"include_usage": True}
        lines, tail = 0, b""
        async with (
            httpx.AsyncClient(timeout=60.0) as client,
            client.stream("POST", self.server.base_url + "/chat/completions", json=body) as r,
        ):
            async for chunk in r.aiter_bytes():
                # "data: " is 6 bytes: a match split across reads spans the last 5 bytes.
                lines += (tail + chunk).count(b"data: ")
                tail = chunk[-5:]
        if lines - 4 != self.n:  # role chunk + N content + finish + usage + [DONE]
            raise BenchmarkError(f"httpx: {lines - 4} content lines, expected {self.n}")

    async def aclose(self) -> None:
        """Close the clients kept for the workload (on the loop that used them)."""
        await self.agent.aclose()
        if self._client is not None:
            await self._client.close()
        await close_clients()

    def cpu_note(self) -> str:
        """CPU per relayed token of the stepstream side (median over its answers)."""
        if not self.cpu_ns:
            return ""
        us = median([ns / self.n / 1e3 for ns in self.cpu_ns])
        return (
            f"tokens: stepstream CPU per relayed token {us:.1f} us (event loop thread, "
            f"median of {len(self.cpu_ns)} answers of {self.n:,} tokens; the server's "
            "thread not counted)"
        )


@contextmanager
def tokens_workload(
    n: int, pm: PluginManager, streams: int = 1
) -> Iterator[tuple[Workload, TokenSides]]:
    """The workload (``streams`` answers per block) and its sides (to close them and for
    the CPU note), the server running until the end."""
    with ModelServer(bulk_responder(n)) as server:
        sides = TokenSides(server, pm, n)
        messages = list(MESSAGES)
        units: dict[str, Unit] = {
            "stepstream": sides.stepstream,
            "langgraph": _langgraph.tokens(server.base_url, MODEL, messages, n, sides.expected),
            "llama-index-workflows": _llama.tokens(
                server.base_url, MODEL, messages, n, sides.expected
            ),
            "openai": sides.bare,
            "httpx": sides.raw,
        }
        w = Workload(
            "tokens",
            "tok/s",
            streams * n,
            {name: repeated(unit, streams) for name, unit in units.items()},
            floor="openai",
            rate=True,
            apart=("httpx",),
            note=f"{n} tokens per stream from a local OpenAI-compatible server",
        )
        yield w, sides
