"""Fixtures for the command-line tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stepstream.agents.local_model import ModelServer


@pytest.fixture
def model_server() -> Iterator[ModelServer]:
    """The local OpenAI-compatible model, streaming Mastra's mock answer."""
    with ModelServer() as server:
        yield server
