"""Watchers of one run: Mastra's two ``run.watch()`` record types, as listeners of the
run's hub (:class:`stepstream.hub.Listener`).

``watch-v2`` hands the callback each stream event as it is emitted. ``watch`` (Mastra's
default) hands it a record of the run's state at each transition, in Mastra 0.10's shape::

    {"type": "watch",
     "payload": {"currentStep": {"id": ..., "status": ..., ...},   # absent at the end
                 "workflowState": {"status": ..., "steps": {...}, "result": ..., "error": ...}},
     "eventTimestamp": <epoch ms>}

A record comes when a step starts (``currentStep.status == "running"``; ``"waiting"``, and
``workflowState.status`` too, when a sleep or a wait for an event begins), when it ends
(``success``, ``failed``, ``suspended``, ``canceled``) and when the execution ends (no
``currentStep``; ``workflowState.status`` is the run's status). ``steps`` is the
``getWorkflowState()`` steps map, with the running step and the steps of nested workflows
(``"inner.step"``) merged in as Mastra's watcher merges them.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeAlias

from .events import Event
from .result import WorkflowResult, now_ms

__all__ = ["EventWatcher", "StateWatcher", "WatchCallback", "WatchType"]

WatchType: TypeAlias = Literal["watch", "watch-v2"]
"""The record type a watcher receives (Mastra's names)."""

WatchCallback: TypeAlias = Callable[[Any], Awaitable[None] | None]
"""A watcher: called with each record (an :class:`Event` for ``watch-v2``, a dict for
``watch``); an awaitable it returns is awaited before the run goes on."""


class EventWatcher:
    """``watch-v2``: the run's events, as its stream has them."""

    def __init__(self, callback: WatchCallback) -> None:
        self.callback = callback

    def on_event(self, event: Event) -> Awaitable[None] | None:
        return self.callback(event)

    def on_settled(self, result: WorkflowResult) -> None:
        pass


class StateWatcher:
    """``watch``: a record of the run's state at each step's start and end and at the end."""

    def __init__(
        self, current_state: Callable[[], dict[str, Any]], callback: WatchCallback
    ) -> None:
        # The run's ``current_state`` (the run is built on this module, so it hands that in).
        self.current_state = current_state
        self.callback = callback
        self._starts: dict[str, dict[str, Any]] = {}
        self._nested: dict[str, dict[str, Any]] = {}  # steps of nested workflows, by full id
        self._pending: set[asyncio.Task[None]] = set()

    def on_event(self, event: Event) -> Awaitable[None] | None:
        wire = event.to_wire()
        kind, payload = wire["type"], dict(wire.get("payload") or {})
        if kind == "finish":
            return self._final()
        if kind not in ("step-start", "step-waiting", "step-result", "step-suspended"):
            return None
        step_id = payload.pop("id")
        if kind in ("step-start", "step-waiting"):
            payload["status"] = "running" if kind == "step-start" else "waiting"
            self._starts[step_id] = payload
            current = {"id": step_id, **payload}
        else:
            current = {"id": step_id, **self._starts.get(step_id, {}), **payload}
            if kind == "step-suspended":
                current["status"] = "suspended"
        record = {k: v for k, v in current.items() if k != "id"}
        if "." in step_id:  # a nested workflow's step: only watchers keep it in `steps`
            self._nested[step_id] = record
        steps = {**self.current_state()["steps"], **self._nested}
        if (
            kind in ("step-start", "step-waiting") or step_id not in steps
        ):  # else the engine's record is newer
            steps[step_id] = record
        # Mastra's record says the run is `waiting` while a sleep or an event wait begins.
        status = "waiting" if kind == "step-waiting" else "running"
        workflow_state = {"status": status, "steps": steps, "result": None, "error": None}
        return self._deliver({"currentStep": current, "workflowState": workflow_state})

    def on_settled(self, result: WorkflowResult) -> None:
        if result.status != "suspended":
            return  # the record comes with `finish`, so that the callback is awaited
        pending = self._final()
        if pending is not None:  # nothing is awaited here: the callback's work goes on alone
            task = asyncio.ensure_future(pending)
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    def _final(self) -> Awaitable[None] | None:
        state = self.current_state()
        steps = {**state["steps"], **self._nested}
        return self._deliver({"workflowState": {**state, "steps": steps}})

    def _deliver(self, payload: dict[str, Any]) -> Awaitable[None] | None:
        answer = self.callback({"type": "watch", "payload": payload, "eventTimestamp": now_ms()})
        return answer if inspect.isawaitable(answer) else None
