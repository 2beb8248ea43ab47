"""The plugin manager factory: defaults, entry points, the off switch, blocking, run plugins."""

from __future__ import annotations

import importlib
import textwrap
from pathlib import Path
from typing import Any

import pytest

from stepstream import (
    Event,
    PluginLoadError,
    StepContext,
    Workflow,
    get_plugin_manager,
    hookimpl,
    step,
)
from stepstream.plugin_manager import AUTOLOAD_ENV


def _install_fake_dist(root: Path, name: str, module_source: str, entry: str) -> None:
    """Write a module and a ``.dist-info`` declaring it in the ``stepstream`` group."""
    (root / f"{name}.py").write_text(textwrap.dedent(module_source))
    info = root / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[stepstream]\n{entry}\n")


@pytest.fixture
def fake_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    _install_fake_dist(
        tmp_path,
        "fake_exporter",
        """
        from stepstream import hookimpl
        SEEN = []

        @hookimpl
        def on_event(event):
            SEEN.append(event.type)
        """,
        "fake = fake_exporter",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(AUTOLOAD_ENV, raising=False)
    importlib.invalidate_caches()
    return "fake"


@step(id="one")
async def one(ctx: StepContext[Any]) -> Any:
    return ctx.input_data


@pytest.mark.asyncio
async def test_entry_point_plugins_are_loaded_automatically(fake_plugin: str) -> None:
    pm = get_plugin_manager()
    assert pm.has_plugin(fake_plugin)
    assert pm.source_of(fake_plugin) == "entrypoint:fake_exporter"
    run = await Workflow(id="wf").then(one).commit().create_run(plugin_manager=pm)
    streamed = [e.type async for e in run.stream(input_data={})]
    module = importlib.import_module("fake_exporter")
    assert streamed == module.SEEN


def test_autoload_off_by_argument_and_by_environment(
    fake_plugin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not get_plugin_manager(load_entrypoints=False).has_plugin(fake_plugin)
    monkeypatch.setenv(AUTOLOAD_ENV, "1")
    assert not get_plugin_manager().has_plugin(fake_plugin)
    assert get_plugin_manager(load_entrypoints=True).has_plugin(fake_plugin)


def test_blocking_an_entry_point_plugin_by_name(fake_plugin: str) -> None:
    pm = get_plugin_manager(block=[fake_plugin])
    assert not pm.has_plugin(fake_plugin) and pm.is_blocked(fake_plugin)
    assert pm.has_plugin("stream")


def test_list_plugins_leaves_blocked_plugins_out() -> None:
    pm = get_plugin_manager(load_entrypoints=False, block=["logger"])
    names = [name for name, _ in pm.list_plugins()]
    assert "logger" not in names and ("logger", "api") not in pm.list_plugins()
    assert "stream" in names


def test_a_plugin_that_fails_to_load_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_fake_dist(
        tmp_path, "broken_plugin", "raise ImportError('no numpy here')", "bad = broken_plugin"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(AUTOLOAD_ENV, raising=False)
    importlib.invalidate_caches()
    with pytest.raises(
        PluginLoadError, match="plugin 'bad' from entry point 'broken_plugin'"
    ) as info:
        get_plugin_manager()
    assert info.value.plugin == "bad"
    assert isinstance(info.value.__cause__, ImportError)
    # Blocking the broken plugin lets everything else load.
    assert get_plugin_manager(block=["bad"]).has_plugin("stream")


def test_extra_plugins_by_object_or_name() -> None:
    class P:
        @hookimpl
        def on_event(self, event: Event) -> None:
            pass

    pm = get_plugin_manager(load_entrypoints=False, plugins=[("mine", P()), P()])
    names = [name for name, _ in pm.list_plugins()]
    assert names[:4] == ["stream", "openai-adapter", "logger", "mine"] and len(names) == 5
    assert pm.source_of("mine") == "api"
    pm.unregister(name="mine")
    assert pm.source_of("mine") is None


class Collect:
    def __init__(self) -> None:
        self.run_ids: set[str] = set()
        self.count = 0

    @hookimpl
    def on_event(self, event: Event) -> None:
        self.run_ids.add(event.run_id)
        self.count += 1


@pytest.mark.asyncio
async def test_run_and_workflow_plugins_see_only_their_run() -> None:
    pm = get_plugin_manager(load_entrypoints=False)
    wf_plugin, run_plugin = Collect(), Collect()
    wf = Workflow(id="wf", plugins=[wf_plugin]).then(one).commit()
    first = await wf.create_run(plugin_manager=pm, plugins=[run_plugin])
    second = await wf.create_run(plugin_manager=pm)
    await first.start({})
    await second.start({})
    assert run_plugin.run_ids == {first.run_id} and run_plugin.count == 5
    assert wf_plugin.run_ids == {first.run_id, second.run_id} and wf_plugin.count == 10
    # Neither is registered on the shared manager: other runs pay nothing for them.
    assert not pm.is_registered(run_plugin) and not pm.is_registered(wf_plugin)


@pytest.mark.asyncio
async def test_watch_sees_this_runs_events_until_unwatched() -> None:
    pm = get_plugin_manager(load_entrypoints=False)
    wf = Workflow(id="wf").then(one).commit()
    run = await wf.create_run(plugin_manager=pm)
    seen: list[str] = []
    received: list[str] = []

    async def slow_watcher(event: Event) -> None:
        received.append(event.type)

    unwatch = run.watch(lambda e: seen.append(e.type), "watch-v2")
    run.watch(slow_watcher, "watch-v2")
    await run.start({})
    assert seen == ["start", "step-start", "step-result", "step-finish", "finish"]
    assert received == seen
    unwatch()
    unwatch()  # idempotent


def test_default_workflow_manager_is_made_once_per_workflow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(AUTOLOAD_ENV, "1")
    wf = Workflow(id="wf").then(one).commit()
    assert wf.plugin_manager is wf.plugin_manager
    assert Workflow(id="other").then(one).commit().plugin_manager is not wf.plugin_manager


def test_a_misspelled_hook_is_refused_at_registration_naming_the_closest_hook() -> None:
    class Typo:
        @hookimpl
        def on_events(self, event: Event) -> None:
            raise AssertionError("never called")

    pm = get_plugin_manager(load_entrypoints=False)
    typo = Typo()
    with pytest.raises(PluginLoadError, match=r"'on_events'.*did you mean 'on_event'") as info:
        pm.register(typo, "typo")
    assert (info.value.plugin, info.value.hook) == ("typo", "on_events")
    # Nothing of it stays registered: the name is free and no hook caller holds it.
    assert not pm.has_plugin("typo") and pm.source_of("typo") is None
    assert not pm.hook.on_events.get_hookimpls()
    with pytest.raises(PluginLoadError):  # refused again, not half-registered the first time
        pm.register(typo, "typo")


def test_an_entry_point_plugin_with_a_misspelled_hook_fails_the_manager(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_fake_dist(
        tmp_path,
        "typo_plugin",
        """
        from stepstream import hookimpl

        @hookimpl
        def before_step_runs(run_id, step_id):
            pass
        """,
        "typo = typo_plugin",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(AUTOLOAD_ENV, raising=False)
    importlib.invalidate_caches()
    with pytest.raises(PluginLoadError) as info:
        get_plugin_manager()
    message = str(info.value)
    assert "plugin 'typo' (entrypoint:typo_plugin)" in message
    assert "'before_step_runs'" in message and "did you mean 'before_step_run'" in message
    assert get_plugin_manager(block=["typo"]).has_plugin("stream")


def test_a_hook_unlike_any_other_gets_no_suggestion_and_optional_hooks_pass() -> None:
    class Stranger:
        @hookimpl
        def frobnicate(self) -> None:
            pass

    class Optional:
        @hookimpl(optionalhook=True)
        def other_projects_hook(self) -> None:
            pass

    pm = get_plugin_manager(load_entrypoints=False)
    with pytest.raises(PluginLoadError, match=r"'frobnicate', which is not a stepstream hook \("):
        pm.register(Stranger())
    assert pm.register(Optional(), "optional") == "optional"


def test_an_argument_the_spec_lacks_is_a_plugin_load_error() -> None:
    class Wrong:
        @hookimpl
        def on_event(self, event: Event, extra: int) -> None:
            pass

    with pytest.raises(PluginLoadError, match=r"plugin 'wrong' \(api\).*extra") as info:
        get_plugin_manager(load_entrypoints=False).register(Wrong(), "wrong")
    assert info.value.__cause__ is not None


def test_an_observer_whose_wants_events_raises_is_reported_and_kept_in() -> None:
    class Moody:
        def wants_events(self) -> bool:
            raise RuntimeError("moody")

        @hookimpl
        def on_event(self, event: Event) -> None:
            pass

    errors: list[str] = []

    class Reporter:
        @hookimpl
        def on_plugin_error(self, plugin_name: str, hook_name: str) -> None:
            errors.append(f"{plugin_name}.{hook_name}")

    pm = get_plugin_manager(load_entrypoints=False, plugins=[("moody", Moody()), Reporter()])
    pm.refresh_observers()
    assert errors == ["moody.wants_events"]
    assert pm.get_plugin("moody") in [i.plugin for i in pm.hook.on_event.get_hookimpls()]
