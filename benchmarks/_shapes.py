"""What every system's workloads share: the input, the gate of the concurrent runs, the types.

Each system module (``_stepstream``, ``_langgraph``, ``_llama``) builds the same shapes from
these: a ``Unit`` is one streamed run, from its creation to its last streamed item, that
checks what it got and raises :class:`BenchmarkError` otherwise, so that a broken system can
never look fast.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import openai

Unit = Callable[[], Coroutine[Any, Any, None]]
"""One streamed run, checked."""

INPUT: dict[str, Any] = {"x": 1, "name": "bench", "tags": ["a", "b"]}
"""The input of every run; trivial steps pass it on unchanged."""


class BenchmarkError(RuntimeError):
    """A run did not stream or end as it must: the system is broken, not fast."""


class Gate:
    """Holds every step of ``n`` concurrent runs until all ``n`` runs have started.

    Each run's first step calls ``await gate.step(first=True)``, which counts it in; when
    the last run is in, ``all_in`` is set. Every step then waits for ``open``, which the
    driver sets after ``all_in`` (and, in the memory child, after reading the RSS): so all
    ``n`` runs are alive at once, whatever the system's scheduling. Once ``open`` is set,
    ``step`` costs one ``Event.wait()`` that returns at once.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.arrived = 0
        self.all_in = asyncio.Event()
        self.open = asyncio.Event()

    async def step(self, first: bool) -> None:
        if first:
            self.arrived += 1
            if self.arrived == self.n:
                self.all_in.set()
        await self.open.wait()


class _Current:
    gate: Gate | None = None


CURRENT = _Current()
"""The gate of the concurrent block being run (one block at a time per process)."""


async def gate_step(first: bool) -> None:
    """What each step of a concurrent run does: pass the current gate."""
    gate = CURRENT.gate
    if gate is None:
        raise BenchmarkError("a gated step ran outside a concurrent block")
    await gate.step(first)


async def gated_block(
    n: int,
    unit: Unit,
    when_all_in: Callable[[], object] | None = None,
) -> tuple[Gate, list[Any]]:
    """Start ``n`` runs of ``unit`` (each its own task), wait until all are in, call
    ``when_all_in()`` (the memory child reads the RSS there), then open the gate.

    Returns the gate and the runs' results. A run that ends before every run is in fails
    the block at once instead of leaving it waiting.
    """
    gate = Gate(n)
    CURRENT.gate = gate
    try:
        tasks = [asyncio.create_task(unit()) for _ in range(n)]
        await wait_all_in(gate, tasks)
        if when_all_in is not None:
            when_all_in()
        gate.open.set()
        return gate, await asyncio.gather(*tasks)
    finally:
        CURRENT.gate = None


def gated_runs(unit: Unit, n: int) -> Unit:
    """A block of :func:`gated_block`: ``n`` runs of ``unit`` at once, all alive together."""

    async def block() -> None:
        await gated_block(n, unit)

    return block


ALL_IN_TIMEOUT = 600.0
"""Seconds the runs of a block get to all start; a system that takes longer is broken."""


async def wait_all_in(gate: Gate, tasks: list[asyncio.Task[Any]]) -> None:
    """Wait for ``gate.all_in``; raise if a run ends (fails) before that."""
    timeout = ALL_IN_TIMEOUT
    waiter = asyncio.create_task(gate.all_in.wait())
    pending: set[asyncio.Future[Any]] = {waiter, *tasks}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not gate.all_in.is_set():
        left = deadline - loop.time()
        if left <= 0:
            break
        done, pending = await asyncio.wait(pending, timeout=left, return_when="FIRST_COMPLETED")
        for task in done:
            if task is not waiter:  # no run can end before the gate opens
                waiter.cancel()
                for t in tasks:
                    t.cancel()
                why = task.exception() if not task.cancelled() else "canceled"
                raise BenchmarkError(f"a run ended before all runs were in: {why!r}")
    if not gate.all_in.is_set():
        waiter.cancel()
        for t in tasks:
            t.cancel()
        raise BenchmarkError(f"only {gate.arrived}/{gate.n} runs started within {timeout:.0f} s")


def expect(ok: bool, what: str) -> None:
    """Raise :class:`BenchmarkError` with ``what`` unless ``ok``."""
    if not ok:
        raise BenchmarkError(what)


_CLIENTS: dict[tuple[str, int], openai.AsyncOpenAI] = {}


async def openai_deltas(base_url: str, model: str, messages: list[Any]) -> AsyncIterator[str]:
    """Each non-empty text delta of one streamed answer from the bare ``openai`` client, one
    client per base URL and event loop kept for every answer (as stepstream's ``Agent`` and
    an application keep theirs): what the peers' token steps relay, there being no
    ``langchain-openai`` or LlamaIndex LLM package here."""
    key = (base_url, id(asyncio.get_running_loop()))
    client = _CLIENTS.get(key)
    if client is None or client.is_closed():
        client = _CLIENTS[key] = openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0)
    stream = await client.chat.completions.create(
        model=model, messages=messages, stream=True, stream_options={"include_usage": True}
    )
    async for chunk in stream:
        if chunk.choices:
            content = chunk.choices[0].delta.content
            if content:
                yield content


async def close_clients() -> None:
    """Close the clients :func:`openai_deltas` kept (on the loop that made them)."""
    while _CLIENTS:
        await _CLIENTS.popitem()[1].close()
