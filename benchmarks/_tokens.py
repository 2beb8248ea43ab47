"""The ``tokens`` workload: one model answer of ``N`` tokens streamed to a consumer.

One local :class:`~stepstream.testing.ModelServer` (a thread of this process)
answers every request with ``bulk_responder(N)``: ``N`` one-token chunks as fast as the
socket takes them. The ``openai`` and ``stepstream`` sides are ``token_relay.py``'s
(``Bench.bare_openai`` and ``Bench.run_stream``: an agent step through ``Run.stream()``);
LangGraph's and LlamaIndex Workflows' are one node / step calling the same bare
``openai.AsyncOpenAI`` client and relaying each text delta through their custom stream.
Every side sends the same request, makes and closes its own client inside the timed block,
and must see exactly the ``N`` deltas, whose concatenation is the server's text.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from stepstream import PluginManager
from stepstream.testing import MODEL, ModelServer, bulk_responder

from . import _langgraph, _llama
from ._shapes import Unit
from ._suite import Workload, repeated
from .token_relay import MESSAGES, Bench


@contextmanager
def tokens_workload(n: int, pm: PluginManager, streams: int = 1) -> Iterator[Workload]:
    """The workload (``streams`` answers per block), its server running until the end."""
    with ModelServer(bulk_responder(n)) as server:
        bench = Bench(server, pm, n)

        async def stepstream() -> None:
            await bench.sample("workflow")

        async def bare() -> None:
            await bench.sample("bare")

        messages = list(MESSAGES)
        units: dict[str, Unit] = {
            "stepstream": stepstream,
            "langgraph": _langgraph.tokens(server.base_url, MODEL, messages, n, bench.expected),
            "llama-index-workflows": _llama.tokens(
                server.base_url, MODEL, messages, n, bench.expected
            ),
            "openai": bare,
        }
        yield Workload(
            "tokens",
            "tok/s",
            streams * n,
            {name: repeated(unit, streams) for name, unit in units.items()},
            floor="openai",
            rate=True,
            note=f"{n} tokens per stream from a local OpenAI-compatible server",
        )
