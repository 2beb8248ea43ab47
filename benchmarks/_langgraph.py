"""LangGraph's side: ``StateGraph``s of the suite's shapes, consumed with ``graph.astream()``.

Every graph is compiled once, without a checkpointer (stepstream's runs have no storage
either), and every run is consumed with ``stream_mode=["updates", "custom"]``: one
``updates`` item per node that ran, plus whatever nodes write with ``get_stream_writer()``.
Nodes are ``async`` functions returning their input, like stepstream's steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypedDict, cast

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.types import StreamMode

from ._shapes import INPUT, Unit, expect, gate_step, openai_deltas

MODES: list[StreamMode] = ["updates", "custom"]
CONFIG: RunnableConfig = {"recursion_limit": 10_000}  # the default (25) stops a 100-node chain


class Passed(TypedDict):
    """The state of the sequences: the input, passed along."""

    x: Any


def _merge(left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any]:
    return {**left, **right}


class Fanned(TypedDict):
    """The state of the fan-out: the input, and each node's output keyed by node name."""

    x: Any
    out: Annotated[dict[str, Any], _merge]


async def _identity(state: Passed) -> dict[str, Any]:
    return {"x": state["x"]}


def chain(
    steps: int, make_node: Callable[[int], Any] | None = None, checkpointer: Any = None
) -> Any:
    """A compiled ``StateGraph`` of ``steps`` nodes ``s0 .. s{steps-1}`` in sequence, each
    ``make_node(i)`` (default: one function returning its input), with ``checkpointer``
    (default: none, the graph keeps nothing)."""
    graph = StateGraph(Passed)
    previous = START
    for i in range(steps):
        name = f"s{i}"
        graph.add_node(name, make_node(i) if make_node else _identity)
        graph.add_edge(previous, name)
        previous = name
    graph.add_edge(previous, END)
    return graph.compile(checkpointer=checkpointer)


async def _consume_chain(graph: Any, steps: int) -> None:
    count, last = 0, None
    async for mode, chunk in graph.astream({"x": INPUT}, CONFIG, stream_mode=MODES):
        count += 1
        last = (mode, chunk)
    expect(count == steps, f"langgraph: {count}/{steps} updates")
    expect(last == ("updates", {f"s{steps - 1}": {"x": INPUT}}), f"langgraph: ended {last!r}")


def seq(steps: int) -> Unit:
    """One run of a ``steps``-node chain, every streamed item counted."""
    graph = chain(steps)
    return lambda: _consume_chain(graph, steps)


def fanout(width: int) -> Unit:
    """One run of ``width`` nodes all leaving ``START`` (one superstep), joining at ``END``."""
    graph = StateGraph(Fanned)
    names = [f"p{i}" for i in range(width)]
    for name in names:

        async def node(state: Fanned, name: str = name) -> dict[str, Any]:
            return {"out": {name: state["x"]}}

        graph.add_node(name, node)
        graph.add_edge(START, name)
        graph.add_edge(name, END)
    compiled = graph.compile()
    expected = set(names)

    async def run() -> None:
        seen: set[str] = set()
        count = 0
        start = Fanned(x=INPUT, out={})
        async for _, chunk in compiled.astream(start, CONFIG, stream_mode=MODES):
            count += 1
            updates = cast("dict[str, Any]", chunk)
            for name, update in updates.items():
                if update == {"out": {name: INPUT}}:
                    seen.add(name)
        expect(count == width and seen == expected, f"langgraph: {count}/{width} updates")

    return run


def gated_node(i: int) -> Any:
    """Node ``i`` of a gated chain: it passes the current gate, then returns its input."""

    async def node(state: Passed) -> dict[str, Any]:
        await gate_step(i == 0)
        return {"x": state["x"]}

    return node


def gated(steps: int) -> Unit:
    """One run of a ``steps``-node chain whose nodes pass the current gate first."""
    graph = chain(steps, gated_node)
    return lambda: _consume_chain(graph, steps)


class Text(TypedDict, total=False):
    """The state of the token graph: the prompt in, the answer's text out."""

    prompt: str
    text: str


def tokens(base_url: str, model: str, messages: list[Any], n: int, expected: str) -> Unit:
    """One node streaming the model's answer with the bare ``openai.AsyncOpenAI`` client
    (there is no ``langchain-openai`` here), writing each text delta with
    ``get_stream_writer()``; the consumer counts the ``custom`` items."""

    async def call_model(state: Text) -> dict[str, Any]:
        write = get_stream_writer()
        parts: list[str] = []
        async for content in openai_deltas(base_url, model, messages):
            write(content)
            parts.append(content)
        return {"text": "".join(parts)}

    graph = StateGraph(Text)
    graph.add_node("model", call_model)
    graph.add_edge(START, "model")
    graph.add_edge("model", END)
    compiled = graph.compile()

    async def run() -> None:
        parts: list[str] = []
        final: Any = None
        async for mode, chunk in compiled.astream(Text(prompt="go"), CONFIG, stream_mode=MODES):
            if mode == "custom":
                parts.append(chunk)
            else:
                final = chunk
        expect(len(parts) == n, f"langgraph: {len(parts)}/{n} tokens")
        expect("".join(parts) == expected, "langgraph: the streamed text differs")
        expect(final == {"model": {"text": expected}}, "langgraph: the final update differs")

    return run
