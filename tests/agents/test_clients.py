"""One AsyncOpenAI client per agent and event loop: reused across answers, closed cleanly."""

from __future__ import annotations

import asyncio
import gc
import threading
import warnings
from typing import Any

import openai
import pytest

from stepstream.agents import Agent, RetryPolicy
from stepstream.testing import ModelServer
from stepstream.testing.model_server import _HTTPServer


class _Connections:
    """Counts the TCP connections the model server accepts."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        self._lock = threading.Lock()
        accept = _HTTPServer.process_request

        def counting(server: _HTTPServer, request: Any, address: Any) -> None:
            with self._lock:
                self.count += 1
            accept(server, request, address)

        monkeypatch.setattr(_HTTPServer, "process_request", counting)


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> _Connections:
    return _Connections(monkeypatch)


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[openai.AsyncOpenAI]:
    clients: list[openai.AsyncOpenAI] = []
    init = openai.AsyncOpenAI.__init__

    def recording(self: openai.AsyncOpenAI, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        clients.append(self)

    monkeypatch.setattr(openai.AsyncOpenAI, "__init__", recording)
    return clients


def agent_on(server: ModelServer) -> Agent:
    return Agent(
        "Weather Agent",
        "Suggest activities.",
        "mock-gpt",
        base_url=server.base_url,
        api_key="test-key",
        retry=RetryPolicy(initial_wait=0.0, jitter=0.0),
    )


def test_answers_on_one_loop_share_one_client_and_connection(
    connections: _Connections, made: list[openai.AsyncOpenAI]
) -> None:
    with ModelServer() as server:
        agent = agent_on(server)

        async def three_answers() -> list[str]:
            async with agent:
                texts = [(await agent.generate(f"q{i}")).text for i in range(3)]
                assert not made[0].is_closed()
            assert made[0].is_closed()  # closed on leaving `async with agent`
            return texts

        texts = asyncio.run(three_answers())
        assert all(texts) and len(server.requests) == 3
    assert len(made) == 1
    assert connections.count == 1  # kept alive between answers


def test_each_loop_gets_its_own_client_closed_at_its_shutdown(
    made: list[openai.AsyncOpenAI],
) -> None:
    with ModelServer() as server:
        agent = agent_on(server)

        def sync_answers() -> None:
            for _ in range(2):  # one thread, one loop (the sync twins'): one client
                assert agent.generate_sync("q").text

        worker = threading.Thread(target=sync_answers)
        worker.start()
        worker.join()
        del worker
        gc.collect()  # the thread's loop is closed with the thread, and the client with it
        assert len(made) == 1 and made[0].is_closed()
        assert asyncio.run(agent.generate("q")).text  # another loop: another client
    assert len(made) == 2
    assert all(client.is_closed() for client in made)  # no `async with`: the loops closed them


def test_a_new_client_after_aclose_and_no_unclosed_socket_warning(
    made: list[openai.AsyncOpenAI],
) -> None:
    with ModelServer() as server:

        async def main(agent: Agent) -> None:
            await agent.generate("a")
            await agent.aclose()
            await agent.generate("b")  # a fresh client, left to the loop's shutdown

        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a ResourceWarning from a leaked socket fails
            asyncio.run(main(agent_on(server)))
            gc.collect()  # the agent is gone: nothing of it may warn now either
    assert len(made) == 2 and all(client.is_closed() for client in made)
