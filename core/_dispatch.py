"""Per-run dispatch: stamps events with the run id and sequence number and calls the hooks.

Every event of a run goes through :meth:`Dispatcher.emit`: one ``on_event`` call on the
engine's plugin manager (and one on the run's own manager, when the workflow or the run has
plugins of their own), one publication to the run's hub (its subscribers and watchers), then
the backpressure waiters those calls returned are awaited.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from ._persist import Persistence
from .errors import describe_error
from .events import FinishEvent, PluginErrorEvent, StartEvent, _EventBase
from .plugin_manager import PluginManager

if TYPE_CHECKING:
    from .hub import Hub
from .result import PluginErrorInfo

EventT = TypeVar("EventT", bound=_EventBase)


class Dispatcher:
    """Fans one run's events and lifecycle calls out to its plugin managers."""

    __slots__ = (
        "_flushing",
        "_managers",
        "_on_event",
        "holding",
        "hub",
        "local",
        "pending_errors",
        "persist",
        "plugin_errors",
        "pm",
        "run_id",
        "seq",
    )

    def __init__(self, run_id: str, pm: PluginManager, local: PluginManager | None) -> None:
        self.run_id = run_id
        self.pm = pm
        self.local = local
        self.seq = 0
        self.pending_errors: list[tuple[str, str, Exception]] = []
        self.plugin_errors: list[PluginErrorInfo] = []
        self._managers = (pm,) if local is None else (pm, local)
        for manager in self._managers:
            manager.refresh_observers()  # observers that want no events now cost nothing
        self._on_event = pm.hook.on_event
        self._flushing = False
        self.persist: Persistence | None = None
        """Where events are recorded for storage, when the run is durable."""
        self.hub: Hub | None = None
        """The run's event hub, which every event is published to."""
        self.holding = True
        """Whether to wait on backpressure; off once the run is being canceled, so that its
        closing events never wait for a consumer that may be the one canceling it."""

    def report(self, plugin: str, hook: str, error: Exception) -> None:
        """A watcher of the run failed: report it as a plugin error of the run."""
        self.pm.report_plugin_error(plugin, hook, error)

    async def emit(self, cls: type[EventT], **fields: Any) -> EventT:
        """Build the run's next event, call ``on_event`` with it, then honour backpressure.

        The event is dispatched before anything is awaited, so a cancellation during the wait
        never loses it.
        """
        if self.local is not None or self.pending_errors:
            return await self._emit_fully(cls, fields)
        event: EventT = cls._build(run_id=self.run_id, seq=self.seq, **fields)
        if self.persist is not None:
            self.persist.record(event)  # raises (before any hook sees it) if it cannot be stored
        self.seq += 1
        waiters = self._on_event(event=event)
        if self.hub is not None:
            waiters += self.hub.publish(event)  # type: ignore[arg-type]
        if self.pending_errors:
            # Nothing follows ``finish``: errors raised while dispatching it are only recorded.
            waiters += self._flush_errors(record_only=cls is FinishEvent)
        if waiters:
            await self._wait(waiters, last=cls is FinishEvent)
        return event

    async def _wait(self, waiters: list[Any], last: bool) -> None:
        # Futures are backpressure (skipped once the run is being canceled); coroutines are
        # plugins' own work on the event (a watcher's callback) and always run.
        for waiter in waiters:
            if self.holding or not isinstance(waiter, asyncio.Future):
                await waiter
        if last and self.pending_errors:  # nothing follows `finish` to report them after
            self._flush_errors(record_only=True)

    async def _emit_fully(self, cls: type[EventT], fields: dict[str, Any]) -> EventT:
        # ``start`` is always first: errors of hooks called before it are reported after it.
        early = self.pending_errors and cls is not StartEvent
        waiters = self._flush_errors() if early else []
        event: EventT = cls._build(run_id=self.run_id, seq=self.seq, **fields)
        if self.persist is not None:
            self.persist.record(event)
        self.seq += 1
        waiters += self._on_event(event=event)
        if self.local is not None:
            waiters += self.local.hook.on_event(event=event)
        if self.hub is not None:
            waiters += self.hub.publish(event)  # type: ignore[arg-type]
        if self.pending_errors:
            waiters += self._flush_errors(record_only=cls is FinishEvent)
        if waiters:
            await self._wait(waiters, last=cls is FinishEvent)
        return event

    def notify(self, hook: str, **kwargs: Any) -> None:
        """Call an observer hook on every manager of the run (errors are isolated per plugin).

        Hooks nobody implements are skipped without a call.
        """
        for pm in self._managers:
            if hook in pm.implemented:
                getattr(pm.hook, hook)(**kwargs)

    @property
    def decisions(self) -> PluginManager:
        """The manager that answers the run's decision hooks: the run's own (its plugins
        first, then the engine's, see :func:`~stepstream.plugin_manager.run_plugin_manager`),
        or the engine's when the run has none."""
        return self.local if self.local is not None else self.pm

    def decide(self, hook: str, **kwargs: Any) -> Any:
        """Ask a decision hook through :attr:`decisions`: the first answer that is not
        ``None`` wins (errors propagate)."""
        return getattr(self.decisions.hook, hook)(**kwargs)

    def decides(self, hook: str) -> bool:
        """Whether any manager of the run implements the decision hook ``hook``."""
        # Asked for every step: two lookups, not a generator over the managers.
        local = self.local
        return hook in self.pm.implemented or (local is not None and hook in local.implemented)

    def wraps_steps(self) -> bool:
        """Whether any plugin implements ``wrap_step_run``."""
        return self.decides("wrap_step_run")

    @contextlib.contextmanager
    def wrap_step(self, step_id: str, input_data: Any) -> Iterator[None]:
        """Enter the context managers returned by ``wrap_step_run`` around a step."""
        managers: list[tuple[PluginManager, Any]] = []
        for pm in self._managers:
            for cm in pm.hook.wrap_step_run(
                run_id=self.run_id, step_id=step_id, input_data=input_data
            ):
                managers.append((pm, cm))
        if not managers:
            yield
            return
        with contextlib.ExitStack() as stack:
            for pm, cm in managers:
                stack.enter_context(_Isolated(pm, cm))
            yield

    def _flush_errors(self, *, record_only: bool = False) -> list[Awaitable[None]]:
        """Record pending plugin errors and dispatch a ``plugin-error`` event for each.

        Errors raised while dispatching those events are recorded but not re-emitted.
        """
        waiters: list[Awaitable[None]] = []
        pending, self.pending_errors[:] = list(self.pending_errors), []
        for plugin, hook, error in pending:
            info = PluginErrorInfo(plugin=plugin, hook=hook, error=describe_error(error))
            self.plugin_errors.append(info)
            if self._flushing or record_only:
                continue
            self._flushing = True
            try:
                event = PluginErrorEvent(
                    run_id=self.run_id, seq=self.seq, plugin=plugin, hook=hook, error=info.error
                )
                if self.persist is not None:
                    self.persist.record(event)
                self.seq += 1
                for pm in self._managers:
                    waiters += pm.hook.on_event(event=event)
                if self.hub is not None:
                    waiters += self.hub.publish(event)
            finally:
                self._flushing = False
            # Errors raised while reporting errors are recorded, never reported as events again
            # (else a plugin failing on every event would multiply them).
            for plugin2, hook2, error2 in self.pending_errors:
                self.plugin_errors.append(PluginErrorInfo(plugin2, hook2, describe_error(error2)))
            self.pending_errors.clear()
        return waiters


class _Isolated:
    """Enter and exit a plugin's context manager, reporting (not raising) its errors."""

    def __init__(self, pm: PluginManager, cm: Any) -> None:
        self.pm, self.cm, self.entered = pm, cm, False

    def _plugin_name(self) -> str:
        return type(self.cm).__module__ + "." + type(self.cm).__qualname__

    def __enter__(self) -> None:
        try:
            self.cm.__enter__()
            self.entered = True
        except Exception as exc:
            self.pm.report_plugin_error(self._plugin_name(), "wrap_step_run", exc)

    def __exit__(self, *exc_info: Any) -> None:
        if self.entered:
            try:
                self.cm.__exit__(*exc_info)
            except Exception as exc:
                self.pm.report_plugin_error(self._plugin_name(), "wrap_step_run", exc)
