"""The plugin manager factory: the one place where plugins are wired.

:func:`get_plugin_manager` makes a fresh manager (there is no global one): it adds the hook
specs, registers the built-in plugins by name, then loads the entry-point group ``stepstream``
(third-party packages), unless switched off by argument or by the environment variable
``STEPSTREAM_DISABLE_PLUGIN_AUTOLOAD``. Any plugin, built-in or not, can be blocked by name.
"""

from __future__ import annotations

import asyncio
import difflib
import importlib
import importlib.metadata
import inspect
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextvars import ContextVar
from typing import Any

import pluggy
from pluggy import HookImpl

from . import hookspecs
from .errors import PluginError, PluginHookError, PluginLoadError

__all__ = [
    "AUTOLOAD_ENV",
    "DEFAULT_PLUGINS",
    "ENTRY_POINT_GROUP",
    "OPTIONAL_PLUGINS",
    "PluginManager",
    "current_error_collector",
    "get_plugin_manager",
    "run_plugin_manager",
]

log = logging.getLogger("stepstream.plugins")

ENTRY_POINT_GROUP = "stepstream"
AUTOLOAD_ENV = "STEPSTREAM_DISABLE_PLUGIN_AUTOLOAD"

DEFAULT_PLUGINS: tuple[tuple[str, str], ...] = (
    ("stream", "stepstream.plugins.stream:StreamPlugin"),
    ("openai-adapter", "stepstream.plugins.openai_adapter:OpenAIAdapterPlugin"),
    ("logger", "stepstream.plugins.logger:LoggerPlugin"),
)
"""The built-in plugins: (canonical name, ``module:factory``). Each manager gets fresh instances."""

OPTIONAL_PLUGINS: dict[str, str] = {
    "metrics": "stepstream.plugins.metrics:MetricsPlugin",
    "jsonl": "stepstream.plugins.jsonl:JsonLinesExporter",
    "otel": "stepstream.plugins.otel:OpenTelemetryExporter",
    "ray": "stepstream.plugins.ray_executor:RayExecutor",
}
"""Built-in plugins that are off until named in ``get_plugin_manager(plugins=[...])``."""

# Hooks whose implementations are isolated from each other (see hookspecs' module docstring).
_OBSERVER_HOOKS = frozenset(
    {
        "on_event",
        "before_workflow_run",
        "after_workflow_run",
        "before_step_run",
        "after_step_run",
        "on_step_error",
        "wrap_step_run",
    }
)

_HOOK_NAMES = tuple(
    name for name in hookspecs.__all__ if name not in ("PROJECT_NAME", "hookimpl", "hookspec")
)

current_error_collector: ContextVar[list[tuple[str, str, Exception]] | None] = ContextVar(
    "stepstream_plugin_errors", default=None
)
"""Where isolated hook errors go for the run executing in this context (set by the engine)."""


class PluginManager(pluggy.PluginManager):
    """A pluggy manager whose observer hook implementations are isolated from each other.

    Each observer implementation is wrapped at registration, so a single pluggy hook call
    still serves every event while a raise in one plugin neither stops the run nor the
    plugins after it. ``strict=True`` re-raises instead, as :class:`PluginHookError`.

    An observer that would do nothing with events for a while (the ``logger`` while its
    logger is off) may define ``wants_events() -> bool``. While it answers ``False``, its
    ``on_event`` is left out of the hook, so it costs nothing per event; the manager asks
    again at the start of every run (:meth:`refresh_observers`), so a change takes effect
    from the next run on.
    """

    def __init__(self, *, strict: bool = False) -> None:
        super().__init__(hookspecs.PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        self.strict = strict
        self.error_count = 0
        self._sources: dict[str, str] = {}
        self.implemented: frozenset[str] = frozenset()
        """Names of the hooks that have at least one implementation (kept current)."""
        self._gated: dict[str, tuple[Callable[[], bool], list[HookImpl]]] = {}

    # -- registration ---------------------------------------------------------------------

    def register(self, plugin: object, name: str | None = None, source: str = "api") -> str | None:
        """Register ``plugin`` under ``name``; ``source`` says where it came from.

        :raises PluginLoadError: if the plugin implements a hook that does not exist (the
            message names it and the closest real hook), or one pluggy refuses (an argument
            its spec does not have); the plugin is then not registered.
        """
        try:
            registered = super().register(plugin, name)
        except pluggy.PluginValidationError as exc:
            shown = name or self.get_canonical_name(plugin)
            detail = str(exc).replace("\n", "; ")
            raise PluginLoadError(f"plugin {shown!r} ({source}): {detail}", plugin=shown) from exc
        if registered is None:  # blocked by name
            return None
        self._sources[registered] = source
        self._refuse_unknown_hooks(plugin, registered, source)
        wants = getattr(plugin, "wants_events", None)
        if callable(wants):
            impls = [i for i in self.hook.on_event.get_hookimpls() if i.plugin is plugin]
            if impls:
                self._gated[registered] = (wants, impls)
        for hook_caller in self.get_hookcallers(plugin) or ():
            if hook_caller.name not in _OBSERVER_HOOKS:
                continue
            for impl in hook_caller.get_hookimpls():
                if impl.plugin is plugin and (impl.wrapper or impl.hookwrapper):
                    super().unregister(plugin)
                    raise PluginError(
                        f"plugin {registered!r}: {hook_caller.name} is an observer hook and "
                        "cannot be a wrapper (its errors could not be isolated); use "
                        "wrap_step_run to wrap steps",
                        plugin=registered,
                        hook=hook_caller.name,
                    )
                if impl.plugin is plugin and not getattr(impl.function, "_isolated", False):
                    # pluggy marks ``function`` Final; wrapping it in place keeps one hook call.
                    impl.function = self._isolate(  # type: ignore[misc]
                        impl.function, registered, hook_caller.name
                    )
        self._refresh()
        return registered

    def _refuse_unknown_hooks(self, plugin: object, name: str, source: str) -> None:
        """Unregister ``plugin`` and raise if it implements a hook no spec declares.

        pluggy would keep such an implementation waiting for a spec that never comes (its
        ``check_pending()``), so a misspelled hook (``on_events``) would never be called.
        """
        for caller in self.get_hookcallers(plugin) or ():
            if caller.has_spec():
                continue
            impls = [i for i in caller.get_hookimpls() if i.plugin is plugin]
            if all(i.optionalhook for i in impls):
                continue  # the plugin said it implements a hook of some other project
            super().unregister(plugin)
            self._sources.pop(name, None)
            close = difflib.get_close_matches(caller.name, _HOOK_NAMES, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise PluginLoadError(
                f"plugin {name!r} ({source}) implements {caller.name!r}, which is not a stepstream "
                f"hook{hint} (the hooks are listed in stepstream.hookspecs)",
                plugin=name,
                hook=caller.name,
            )

    def unregister(self, plugin: object | None = None, name: str | None = None) -> Any:
        """Unregister a plugin by object or name (pluggy's semantics)."""
        if name is None and plugin is not None:
            name = self.get_name(plugin)
        removed = super().unregister(plugin, name)
        self._sources.pop(name or "", None)
        self._gated.pop(name or "", None)
        self._refresh()
        return removed

    def refresh_observers(self) -> None:
        """Ask each plugin with ``wants_events()`` whether it wants events now, and put its
        ``on_event`` in the hook or take it out accordingly (called as each run starts)."""
        if not self._gated:
            return
        caller = self.hook.on_event
        for name, (wants, impls) in self._gated.items():
            try:
                want = bool(wants())
            except Exception as exc:  # an observer's error, isolated like its hooks' errors
                self.report_plugin_error(name, "wants_events", exc)
                want = True
            present = impls[0] in caller._hookimpls  # pluggy keeps no public view
            if want and not present:
                for impl in impls:
                    caller._add_hookimpl(impl)  # keeps tryfirst/trylast order
            elif not want and present:
                caller._remove_plugin(impls[0].plugin)
        self._refresh()

    def _refresh(self) -> None:
        # The engine's answers that a run's manager forwards to are not its own.
        self.implemented = frozenset(
            name
            for name, caller in vars(self.hook).items()
            if any(not isinstance(i.plugin, _EngineDecisions) for i in caller.get_hookimpls())
        )

    def source_of(self, name: str) -> str | None:
        """Where plugin ``name`` came from: ``default``, ``entrypoint:<dist>`` or ``api``."""
        return self._sources.get(name)

    def list_plugins(self) -> list[tuple[str, str]]:
        """The registered plugins as ``(name, source)`` pairs, in registration order.

        Blocked names are left out: pluggy keeps them as names without a plugin.
        """
        listed = self.list_name_plugin()
        return [(name, self._sources.get(name, "api")) for name, plugin in listed if plugin]

    # -- error isolation --------------------------------------------------------------------

    def _isolate(self, function: Callable[..., Any], plugin: str, hook: str) -> Callable[..., Any]:
        def isolated(*args: Any) -> Any:
            try:
                result = function(*args)
            except Exception as exc:
                self.report_plugin_error(plugin, hook, exc)
                return None
            if result is None or isinstance(result, asyncio.Future):
                return result  # a backpressure handle, awaited only while the run holds
            if inspect.isawaitable(result):
                return self._guard(result, plugin, hook)
            return result

        isolated._isolated = True  # type: ignore[attr-defined]
        isolated.__wrapped__ = function  # type: ignore[attr-defined]
        return isolated

    async def _guard(self, awaitable: Awaitable[Any], plugin: str, hook: str) -> Any:
        # What an observer returns to be awaited (a watcher's coroutine) is isolated too.
        try:
            return await awaitable
        except Exception as exc:
            self.report_plugin_error(plugin, hook, exc)
            return None

    def report_plugin_error(self, plugin: str, hook: str, error: Exception) -> None:
        """Handle a raise in an observer hook: re-raise in strict mode, else log and report."""
        if self.strict:
            raise PluginHookError(
                f"plugin {plugin!r} raised in hook {hook!r}: {type(error).__name__}: {error}",
                plugin=plugin,
                hook=hook,
            ) from error
        self.error_count += 1
        log.error("plugin %r raised in hook %r", plugin, hook, exc_info=error)
        collector = current_error_collector.get()
        if collector is not None:
            collector.append((plugin, hook, error))
        try:
            self.hook.on_plugin_error(plugin_name=plugin, hook_name=hook, error=error)
        except Exception:
            log.exception("on_plugin_error raised while reporting plugin %r", plugin)

    # -- loading ------------------------------------------------------------------------------

    def load_entrypoint_plugins(self, group: str = ENTRY_POINT_GROUP) -> int:
        """Load and register every entry point of ``group``; return how many were registered.

        A plugin that fails to import raises :class:`PluginLoadError` naming the entry point.
        Blocked names are skipped without importing them.
        """
        count = 0
        for ep in importlib.metadata.entry_points(group=group):
            if self.is_blocked(ep.name) or self.has_plugin(ep.name):
                continue
            try:
                plugin = ep.load()
            except Exception as exc:
                raise PluginLoadError(
                    f"plugin {ep.name!r} from entry point {ep.value!r} failed to load: "
                    f"{type(exc).__name__}: {exc}",
                    plugin=ep.name,
                ) from exc
            dist = ep.dist.name if ep.dist is not None else "?"
            if self.register(plugin, ep.name, source=f"entrypoint:{dist}") is not None:
                count += 1
        return count


class _EngineDecisions:
    """Asked last by a run's own manager: the engine's manager's answers to decision hooks."""

    def __init__(self, engine: PluginManager) -> None:
        self.engine = engine

    @hookspecs.hookimpl(trylast=True)
    def open_event_stream(self, run_id: str, buffer_size: int) -> Any:
        return self.engine.hook.open_event_stream(run_id=run_id, buffer_size=buffer_size)

    @hookspecs.hookimpl(trylast=True)
    def make_stream_adapter(self, provider: str, model: str) -> Any:
        return self.engine.hook.make_stream_adapter(provider=provider, model=model)

    @hookspecs.hookimpl(trylast=True)
    def make_step_executor(self, step: Any, workflow_id: str) -> Any:
        return self.engine.hook.make_step_executor(step=step, workflow_id=workflow_id)


def run_plugin_manager(engine: PluginManager, plugins: Sequence[object]) -> PluginManager:
    """The manager of a run with plugins of its own (the workflow's and the run's).

    Its observer hooks call those plugins only (the engine's manager is called beside it);
    its decision hooks are the run's one route to an answer: those plugins first, then the
    engine's manager (see the decision hooks in :mod:`stepstream.hookspecs`).
    """
    local = PluginManager(strict=engine.strict)
    for plugin in plugins:
        local.register(plugin)
    local.register(_EngineDecisions(engine), name="engine-decisions", source="engine")
    return local


def get_plugin_manager(
    *,
    plugins: Iterable[str | object | tuple[str, object]] = (),
    block: Iterable[str] = (),
    load_entrypoints: bool | None = None,
    strict: bool = False,
) -> PluginManager:
    """Make a fresh plugin manager: hook specs, built-ins, entry points, then ``plugins``.

    :param plugins: Extra plugins to register: an object, a ``(name, object)`` pair, or the
        name of an optional built-in (``"metrics"``, ``"jsonl"``, ``"otel"``), made with its
        defaults.
    :param block: Plugin names to keep out (built-in or third-party), e.g. ``["stream"]``.
    :param load_entrypoints: Load the ``stepstream`` entry-point group. ``None`` (default) loads
        it unless the environment variable ``STEPSTREAM_DISABLE_PLUGIN_AUTOLOAD`` is set to a
        non-empty value.
    :param strict: Re-raise errors of observer hooks instead of isolating them (for tests).
    """
    pm = PluginManager(strict=strict)
    for name in block:
        pm.set_blocked(name)
    for name, target in DEFAULT_PLUGINS:
        if not pm.is_blocked(name):
            module_path, _, factory = target.partition(":")
            plugin = getattr(importlib.import_module(module_path), factory)()
            pm.register(plugin, name, source="default")
    if load_entrypoints is None:
        load_entrypoints = not os.environ.get(AUTOLOAD_ENV)
    if load_entrypoints:
        pm.load_entrypoint_plugins()
    for item in plugins:
        if isinstance(item, str):
            pm.register(_make_builtin(item), item, source="builtin")
        elif isinstance(item, tuple):
            pm.register(item[1], item[0])
        else:
            pm.register(item)
    return pm


def _make_builtin(name: str) -> object:
    target = OPTIONAL_PLUGINS.get(name)
    if target is None:
        known = ", ".join(sorted(OPTIONAL_PLUGINS))
        raise PluginLoadError(f"no built-in plugin named {name!r} (known: {known})", plugin=name)
    module_path, _, factory = target.partition(":")
    try:
        module = importlib.import_module(module_path)
    except ImportError as exc:
        raise PluginLoadError(
            f"built-in plugin {name!r} needs an optional dependency: {exc} "
            f"(pip install 'stepstream[{name}]')",
            plugin=name,
        ) from exc
    made: object = getattr(module, factory)()
    return made
