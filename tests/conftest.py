"""Shared fixtures: a fresh plugin manager per test and a task-leak check.

The ``recorder``, ``model_server`` and ``postgres_dsn`` fixtures come from the testing kit's
pytest plugin (``stepstream.testing``), as they would in a user's project.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

from stepstream import PluginManager, get_plugin_manager
from stepstream.testing import Recorder

# tests/ray needs the `ray` extra and tests/benchmarks the `bench` extra (the README's test
# command installs both). Without them those tests are left out, unless CI is set: CI must
# run them.
collect_ignore = [
    folder
    for folder, module in (("ray", "ray"), ("benchmarks", "langgraph"))
    if importlib.util.find_spec(module) is None and not os.environ.get("CI")
]


@pytest.fixture
def pm(recorder: Recorder) -> PluginManager:
    """A fresh manager with the built-ins and the recorder; no entry points."""
    return get_plugin_manager(load_entrypoints=False, plugins=[("recorder", recorder)])


async def assert_no_tasks_left() -> None:
    """No task but the test's own is still alive.

    Libraries' abandoned async generators (the ``openai`` SDK's SSE readers) are closed by
    the loop in tasks of their own after garbage collection: those must finish, promptly.
    """
    gc.collect()
    for _ in range(3):
        await asyncio.sleep(0)  # let done-callbacks and finalizers run, not a timing wait
    current = asyncio.current_task()
    alive = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    closing = [t for t in alive if type(t.get_coro()).__name__ == "async_generator_athrow"]
    ours = [t for t in alive if t not in closing]
    assert ours == [], f"tasks left running: {ours}"
    if closing:
        _, pending = await asyncio.wait(closing, timeout=5)
        assert not pending, f"async generators never closed: {pending}"


async def leave_after_deltas(stream: AsyncIterator[Any], count: int) -> None:
    """Read ``stream`` until its ``count``-th ``tool-call-delta``, then leave it (``break``),
    as a consumer that stops reading in the middle of an agent's answer does."""
    seen = 0
    async for event in stream:
        if event.type == "tool-call-delta":
            seen += 1
            if seen == count:
                break
