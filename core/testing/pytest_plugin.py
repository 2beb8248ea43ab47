"""The pytest plugin of the testing kit, loaded through the ``pytest11`` entry point.

It adds the ``model_server``, ``recorder`` and ``postgres_dsn`` fixtures, the ``real_model``
marker, and the guard that fails a test whose OpenAI client calls a model off this machine.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from .guard import block_real_models
from .model_server import ModelServer
from .postgres import ThrowawayPostgres
from .recorder import Recorder

__all__ = [
    "model_server", "postgres_dsn", "pytest_addoption", "pytest_configure",
    "pytest_runtest_call", "recorder",
]  # fmt: skip


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add the ``stepstream_block_real_models`` ini option (on by default)."""
    parser.addini(
        "stepstream_block_real_models",
        type="bool",
        default=True,
        help="fail tests whose OpenAI client calls a model off this machine (stepstream)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``real_model`` marker (so ``--strict-markers`` accepts it)."""
    config.addinivalue_line(
        "markers", "real_model: let this test's OpenAI client call a model off this machine"
    )


@pytest.fixture
def model_server() -> Iterator[ModelServer]:
    """A local OpenAI-compatible model on 127.0.0.1, answering like Mastra's mock model.

    Give an OpenAI client ``base_url=model_server.base_url`` (any ``api_key``), and set
    ``model_server.responder`` to script its replies; ``model_server.requests`` lists the
    request bodies received.
    """
    with ModelServer() as server:
        yield server


@pytest.fixture
def recorder() -> Recorder:
    """A fresh :class:`~stepstream.testing.Recorder`, to register as a plugin."""
    return Recorder()


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """The DSN of an empty database on a PostgreSQL server started for this test session.

    Needs psycopg (``stepstream[postgres]``) and the server binaries; without the binaries the
    test is skipped, or fails when the ``CI`` environment variable is set.
    """
    try:
        server = ThrowawayPostgres(database="stepstream_test")
    except FileNotFoundError as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    try:
        with server as dsn:
            yield dsn
    except RuntimeError as exc:  # initdb or pg_ctl failed: their output says why
        pytest.fail(str(exc))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Run each test inside :func:`block_real_models`, unless it is marked ``real_model`` or
    the ``stepstream_block_real_models`` ini option is false (for a project that mocks the
    OpenAI API at the transport, e.g. with respx).

    Refusing the call may not fail the test by itself (an agent step turns the error into a
    failed step), so a test that made a refused call fails here, after it ran.
    """
    guarded = item.config.getini("stepstream_block_real_models")
    if item.get_closest_marker("real_model") or not guarded:
        return (yield)
    with block_real_models() as guard:
        outcome = yield
    if guard.blocked:
        pytest.fail(f"the test called a real model: {', '.join(guard.blocked)}", pytrace=False)
    return outcome
