"""The guard against real model calls: refused off this machine, allowed on it, and a test
that swallowed the refusal still fails."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from stepstream.errors import RealModelCallError
from stepstream.testing import ModelServer, block_real_models, is_local_host

from .user_project import run_user_tests


def refusal(error: BaseException) -> RealModelCallError:
    """The guard's error, raised as is (openai 3) or as the cause of a connection error (2)."""
    cause = error if isinstance(error, RealModelCallError) else error.__cause__
    assert isinstance(cause, RealModelCallError), repr(error)
    return cause


REFUSED = (RealModelCallError, openai.APIConnectionError)


def ask(client: openai.OpenAI) -> str | None:
    messages = [{"role": "user", "content": "hi"}]
    answer = client.chat.completions.create(model="m", messages=messages)  # type: ignore[arg-type]
    return answer.choices[0].message.content


def test_a_call_to_another_host_is_refused_before_it_leaves() -> None:
    client = openai.OpenAI(base_url="https://api.example.invalid/v1", api_key="k", max_retries=0)
    with block_real_models() as guard, pytest.raises(REFUSED) as caught:
        ask(client)
    assert refusal(caught.value).url == "https://api.example.invalid/v1/chat/completions"
    assert "point the client at the model_server fixture" in str(refusal(caught.value))
    assert guard.blocked == ["https://api.example.invalid/v1/chat/completions"]


@pytest.mark.asyncio
async def test_async_clients_are_guarded_too() -> None:
    client = openai.AsyncOpenAI(base_url="http://10.1.2.3/v1", api_key="k", max_retries=0)
    with block_real_models() as guard, pytest.raises(REFUSED) as caught:
        await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert refusal(caught.value).url == "http://10.1.2.3/v1/chat/completions"
    assert guard.blocked == ["http://10.1.2.3/v1/chat/completions"]


def test_the_local_model_server_is_allowed(model_server: ModelServer) -> None:
    client = openai.OpenAI(base_url=model_server.base_url, api_key="k", max_retries=0)
    with block_real_models() as guard:
        assert ask(client) == "Activities for London: 1. Visit the British Museum."
    assert guard.blocked == []


def test_requests_not_made_by_the_openai_sdk_pass() -> None:
    with block_real_models() as guard:
        guard.check(httpx.Request("GET", "https://example.org/data.json"))
    assert guard.blocked == []


# openai 2 sends through httpx, openai 3 through its fork httpx2: both are guarded.
TRANSPORTS = [
    importlib.import_module(m) for m in ("httpx", "httpx2") if importlib.util.find_spec(m)
]


@pytest.mark.parametrize("module", TRANSPORTS)
def test_the_transports_are_restored_after_the_block(module: Any) -> None:
    sync, async_ = module.HTTPTransport, module.AsyncHTTPTransport
    before = sync.handle_request, async_.handle_async_request
    with block_real_models():
        assert sync.handle_request is not before[0]
        assert async_.handle_async_request is not before[1]
    assert (sync.handle_request, async_.handle_async_request) == before


@pytest.mark.parametrize(
    ("host", "local"),
    [("127.0.0.1", True), ("127.8.9.1", True), ("::1", True), ("[::1]", True),
     ("localhost", True), ("api.openai.com", False), ("10.0.0.1", False), ("", False)],
)  # fmt: skip
def test_local_hosts(host: str, local: bool) -> None:
    assert is_local_host(host) is local


USER_TESTS = """
import importlib
import importlib.util

import openai
import pytest


def test_swallows_the_refusal():
    client = openai.OpenAI(base_url="https://api.example.invalid/v1", api_key="k", max_retries=0)
    try:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    except Exception:  # as code under test may do: the guard still fails the test
        pass


@pytest.mark.real_model
def test_marked_real_model_is_not_guarded():
    for name in ("httpx", "httpx2"):
        if importlib.util.find_spec(name):
            transport = importlib.import_module(name).HTTPTransport
            assert transport.handle_request.__qualname__ == "HTTPTransport.handle_request"
"""


def test_the_plugin_fails_a_test_that_called_a_real_model(tmp_path: Path) -> None:
    done = run_user_tests(tmp_path, USER_TESTS)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 failed, 1 passed" in done.stdout
    assert "the test called a real model: https://api.example.invalid" in done.stdout


def test_the_guard_can_be_switched_off_for_a_project(tmp_path: Path) -> None:
    done = run_user_tests(tmp_path, USER_TESTS, ini="stepstream_block_real_models = false")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout
