"""The public surface: exact, sorted ``__all__``; py.typed shipped; sync twins match."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest

import stepstream
from stepstream import Run

PUBLIC_MODULES = [
    "stepstream",
    "stepstream.channel",
    "stepstream.context",
    "stepstream.errors",
    "stepstream.events",
    "stepstream.executor",
    "stepstream.graph",
    "stepstream.hookspecs",
    "stepstream.plugin_manager",
    "stepstream.recovery",
    "stepstream.result",
    "stepstream.hub",
    "stepstream.run",
    "stepstream.run_stream",
    "stepstream.step_like",
    "stepstream.steps",
    "stepstream.usage",
    "stepstream.watching",
    "stepstream.workflow",
    "stepstream.plugins",
    "stepstream.plugins.stream",
    "stepstream.plugins.openai_adapter",
    "stepstream.plugins.ray_executor",
    "stepstream.adapter",
    "stepstream.agents",
    "stepstream.agents.agent",
    "stepstream.agents.answers",
    "stepstream.agents.openai_stream",
    "stepstream.agents.recorded",
    "stepstream.agents.redaction",
    "stepstream.agents.retry",
    "stepstream.agents.step",
    "stepstream.agents.tools",
    "stepstream.storage",
    "stepstream.storage.sqlite",
    "stepstream.storage.postgres",
    "stepstream.server",
    "stepstream.server.app",
    "stepstream.server.describe",
    "stepstream.cli",
    "stepstream.client",
    "stepstream.run_ids",
    "stepstream.testing",
    "stepstream.testing.guard",
    "stepstream.testing.model_server",
    "stepstream.testing.postgres",
    "stepstream.testing.pytest_plugin",
    "stepstream.testing.recorder",
    "stepstream.testing.replies",
    "stepstream.testing.responders",
    "stepstream.testing.runner",
]


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_all_is_sorted_and_exact(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    # Sorted as ruff's RUF022 wants: CONSTANTS, then Classes, then functions.
    kind = lambda s: (0 if s.isupper() else 1 if s[0].isupper() else 2, s)  # noqa: E731
    assert exported == sorted(exported, key=kind), f"{name}.__all__ is not sorted"
    assert len(set(exported)) == len(exported)
    for item in exported:
        assert hasattr(module, item), f"{name}.__all__ names missing {item!r}"
    if name == "stepstream":
        return
    defined = {
        k
        for k, v in vars(module).items()
        if not k.startswith("_")
        and getattr(v, "__module__", name) == name
        and (inspect.isclass(v) or inspect.isfunction(v))
    }
    assert defined <= set(exported), f"{name} defines public names not in __all__"


def test_py_typed_is_shipped() -> None:
    assert (Path(stepstream.__file__).parent / "py.typed").exists()


@pytest.mark.parametrize("name", ["start", "resume", "cancel"])
def test_sync_twins_keep_the_async_signature(name: str) -> None:
    async_sig = inspect.signature(getattr(Run, name))
    sync_sig = inspect.signature(getattr(Run, f"{name}_sync"))
    assert list(async_sig.parameters) == list(sync_sig.parameters)
    for param in async_sig.parameters.values():
        other = sync_sig.parameters[param.name]
        assert (param.kind, param.default, param.annotation) == (
            other.kind,
            other.default,
            other.annotation,
        )


def test_stream_sync_twin_matches_stream_but_closes_on_suspend() -> None:
    a = inspect.signature(Run.stream).parameters
    s = inspect.signature(Run.stream_sync).parameters
    assert list(a) == list(s)
    assert a["close_on_suspend"].default is False and s["close_on_suspend"].default is True


def test_every_error_of_the_tree_is_exported_at_the_top() -> None:
    from stepstream import errors

    classes = {n for n in errors.__all__ if inspect.isclass(getattr(errors, n))}
    assert "StepTimeoutError" in classes
    assert classes <= set(stepstream.__all__)
    for name in classes:
        assert getattr(stepstream, name) is getattr(errors, name)
